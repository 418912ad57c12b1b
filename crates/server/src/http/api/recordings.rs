//! `GET /api/v1/calls/{id}/recording`: the call's WAV, with Range requests (a player seeks),
//! served only from the `[recording] dir` directory.

use std::path::{Path as FsPath, PathBuf};

use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt as _;
use tower_http::services::ServeFile;

use super::error::{ApiError, ErrorBody};
use crate::http::AppState;

/// The media type of recordings (RFC 2361 names `audio/vnd.wave`; players expect this one).
static AUDIO_WAV: std::sync::LazyLock<mime::Mime> = std::sync::LazyLock::new(|| {
    "audio/wav"
        .parse()
        .unwrap_or(mime::APPLICATION_OCTET_STREAM)
});

/// The file of a stored recording path inside `dir`. Call control stores
/// `<dir>/<day>/<call>.wav`: the part below `dir` must be plain names (no `..`, no root), end
/// in `.wav`, and the resolved file (symbolic links followed) must still be inside `dir`.
fn recording_file(dir: &FsPath, stored: &str) -> Option<PathBuf> {
    use std::path::Component;
    let stored = FsPath::new(stored);
    let relative = stored.strip_prefix(dir).unwrap_or(stored);
    if !relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
        || relative.extension().is_none_or(|e| e != "wav")
    {
        return None;
    }
    let dir = dir.canonicalize().ok()?;
    let file = dir.join(relative).canonicalize().ok()?;
    (file.starts_with(&dir) && file.is_file()).then_some(file)
}

/// The recording of a call as `audio/wav`; `Range: bytes=…` answers 206 with that part.
#[utoipa::path(
    get,
    path = "/api/v1/calls/{id}/recording",
    operation_id = "getCallRecording",
    tag = "calls",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The call's record id")),
    responses(
        (status = 200, description = "The whole WAV", content_type = "audio/wav", body = Vec<u8>),
        (status = 206, description = "The requested byte range", content_type = "audio/wav", body = Vec<u8>),
        (status = 401, description = "Missing or wrong token", body = ErrorBody),
        (status = 403, description = "An agent token", body = ErrorBody),
        (status = 404, description = "No such call, or it was not recorded", body = ErrorBody),
        (status = 416, description = "The range is outside the file"),
        (status = 503, description = "The database is unreachable", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let call = super::calls::stored(&state, &id).await?;
    let Some(stored) = call.record.recording else {
        return Err(ApiError::not_found(format!("call {id:?} was not recorded")));
    };
    let Some(file) = recording_file(&state.config.recording.dir, &stored) else {
        tracing::warn!(call_id = %id, recording = %stored, "recording file missing or outside the recording directory");
        return Err(ApiError::not_found(format!(
            "the recording of call {id:?} is not in the recording directory"
        )));
    };
    match ServeFile::new_with_mime(file, &AUDIO_WAV)
        .oneshot(req)
        .await
    {
        Ok(resp) => Ok(resp.into_response()),
        Err(e) => Err(ApiError::unavailable(format!(
            "cannot read the recording: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_wav_files_inside_the_directory_are_served() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("recordings");
        std::fs::create_dir(&dir).unwrap();
        std::fs::create_dir(dir.join("2026-03-02")).unwrap();
        std::fs::write(dir.join("2026-03-02/a.wav"), b"RIFF").unwrap();
        std::fs::write(root.path().join("secret.wav"), b"RIFF").unwrap();
        std::fs::write(dir.join("notes.txt"), b"x").unwrap();
        std::os::unix::fs::symlink(root.path().join("secret.wav"), dir.join("link.wav")).unwrap();
        let stored = dir.join("2026-03-02/a.wav");
        assert!(recording_file(&dir, stored.to_str().unwrap()).is_some());
        assert!(recording_file(&dir, "2026-03-02/a.wav").is_some());
        assert!(recording_file(&dir, "2026-03-02/../../secret.wav").is_none());
        assert!(recording_file(&dir, "../secret.wav").is_none());
        assert!(recording_file(&dir, "/etc/passwd").is_none());
        assert!(recording_file(&dir, "notes.txt").is_none());
        assert!(recording_file(&dir, "link.wav").is_none());
        assert!(recording_file(&dir, "..").is_none());
    }
}
