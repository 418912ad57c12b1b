//! Where a node keeps what it writes: the SQLite file, the spool and the recordings share one
//! state directory, never the process's working directory by accident (two nodes started from
//! one folder would otherwise meet on `./spool`).
//!
//! The state directory is, in this order: `[state] dir` (relative to the configuration file's
//! directory); `$STATE_DIRECTORY`, which systemd sets from the unit's `StateDirectory=`; the
//! directory of the SQLite database file. Relative `database.url` (SQLite), `database.spool_dir`
//! and `recording.dir` are then taken inside it. A PostgreSQL node has no database file, so
//! it needs one of the first two unless both of its local paths are absolute.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use super::{Config, ConfigError, err};

/// How the state directory was chosen (logged at start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateDirSource {
    /// `[state] dir`.
    Config,
    /// `$STATE_DIRECTORY` (systemd's `StateDirectory=`).
    Environment,
    /// The SQLite database file's directory.
    DatabaseFile,
}

impl std::fmt::Display for StateDirSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StateDirSource::Config => "state.dir",
            StateDirSource::Environment => "$STATE_DIRECTORY",
            StateDirSource::DatabaseFile => "the SQLite file's directory",
        })
    }
}

/// `sqlite://path?query` → (`path`, `?query`); `None` for PostgreSQL and in-memory URLs.
fn sqlite_file(url: &str) -> Option<(&str, &str)> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    if rest.contains(":memory:") {
        return None;
    }
    let (path, query) = rest.find('?').map_or((rest, ""), |at| rest.split_at(at));
    (!path.is_empty()).then_some((path, query))
}

impl Config {
    /// Chooses the state directory and makes the state paths use it (see the module docs).
    /// `config_dir` is the configuration file's directory (`None` for the built-in demo);
    /// `env_state_dir` is `$STATE_DIRECTORY`, whose first entry is used. Touches no file.
    pub fn resolve_state_paths(
        &mut self,
        config_dir: Option<&Path>,
        env_state_dir: Option<&OsStr>,
    ) -> Result<(), Vec<ConfigError>> {
        let explicit = self.state.dir.clone().map(|dir| match config_dir {
            Some(base) if dir.is_relative() => base.join(dir),
            _ => dir,
        });
        let from_env = env_state_dir
            .and_then(|v| std::env::split_paths(v).find(|p| !p.as_os_str().is_empty()));
        let db_file = sqlite_file(&self.database.url).map(|(path, _)| PathBuf::from(path));
        let chosen = explicit
            .map(|d| (d, StateDirSource::Config))
            .or_else(|| from_env.map(|d| (d, StateDirSource::Environment)))
            .or_else(|| {
                db_file.as_ref().map(|file| {
                    let parent = file.parent().unwrap_or(Path::new(""));
                    let dir = if parent.as_os_str().is_empty() {
                        PathBuf::from(".")
                    } else {
                        parent.to_owned()
                    };
                    (dir, StateDirSource::DatabaseFile)
                })
            });
        let mut errors = Vec::new();
        if let Some((dir, source)) = &chosen {
            if *source != StateDirSource::DatabaseFile
                && let Some((file, query)) = sqlite_file(&self.database.url)
                && Path::new(file).is_relative()
            {
                match dir.join(file).to_str() {
                    Some(path) => self.database.url = format!("sqlite://{path}{query}"),
                    None => errors.push(err(
                        "state.dir",
                        format!("{} is not valid UTF-8", dir.display()),
                    )),
                }
            }
            self.state.dir = Some(dir.clone());
            self.state.source = Some(*source);
        }
        let state_dir = chosen.map(|(dir, _)| dir);
        for (key, path) in [
            ("database.spool_dir", &mut self.database.spool_dir),
            ("recording.dir", &mut self.recording.dir),
        ] {
            if path.is_absolute() {
                continue;
            }
            match &state_dir {
                Some(dir) => *path = dir.join(&*path),
                None => errors.push(err(
                    key,
                    format!(
                        "the relative path {:?} needs a state directory, and a PostgreSQL \
                         database has no file to put it beside: set [state] dir, run under \
                         systemd with StateDirectory= (it sets $STATE_DIRECTORY), or give an \
                         absolute path",
                        path.display()
                    ),
                )),
            }
        }
        super::none_or_all(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        let text = format!(
            "[sip]\nlisten = [\"udp:127.0.0.1:5060\"]\ndomain = \"d\"\nadvertised_address = \"127.0.0.1\"\n\n\
             [[queues]]\nname = \"orders\"\nskill = \"orders\"\n\n[[queues]]\nname = \"regional\"\nskill = \"regional\"\n{extra}"
        );
        Config::from_toml(&text).unwrap()
    }

    #[test]
    fn sqlite_defaults_stay_beside_the_database_file() {
        let mut c = config("[database]\nurl = \"sqlite:///srv/sb/calls.db?mode=rwc\"\n");
        c.resolve_state_paths(Some(Path::new("/etc/sb")), None)
            .unwrap();
        assert_eq!(c.database.url, "sqlite:///srv/sb/calls.db?mode=rwc");
        assert_eq!(c.database.spool_dir, Path::new("/srv/sb/spool"));
        assert_eq!(c.recording.dir, Path::new("/srv/sb/recordings"));
        assert_eq!(c.state.source, Some(StateDirSource::DatabaseFile));

        // The default relative file: its directory is the working directory, as before.
        let mut c = config("");
        c.resolve_state_paths(None, None).unwrap();
        assert_eq!(c.database.url, "sqlite://switchboard.db");
        assert_eq!(c.database.spool_dir, Path::new("./spool"));
    }

    #[test]
    fn systemd_state_directory_holds_the_database_spool_and_recordings() {
        let mut c = config("");
        c.resolve_state_paths(
            Some(Path::new("/etc/switchboard")),
            Some(OsStr::new("/var/lib/switchboard:/var/lib/other")),
        )
        .unwrap();
        assert_eq!(
            c.database.url,
            "sqlite:///var/lib/switchboard/switchboard.db"
        );
        assert_eq!(
            c.database.spool_dir,
            Path::new("/var/lib/switchboard/spool")
        );
        assert_eq!(
            c.recording.dir,
            Path::new("/var/lib/switchboard/recordings")
        );
        assert_eq!(c.state.source, Some(StateDirSource::Environment));
    }

    #[test]
    fn configured_state_dir_wins_and_is_relative_to_the_config_file() {
        let mut c = config(
            "[state]\ndir = \"node-a\"\n[database]\nurl = \"postgres://sb@db/sb\"\nspool_dir = \"/fast/spool\"\n",
        );
        c.resolve_state_paths(Some(Path::new("/etc/sb")), Some(OsStr::new("/var/lib/x")))
            .unwrap();
        assert_eq!(c.state.dir.as_deref(), Some(Path::new("/etc/sb/node-a")));
        assert_eq!(c.database.url, "postgres://sb@db/sb");
        assert_eq!(c.database.spool_dir, Path::new("/fast/spool"));
        assert_eq!(c.recording.dir, Path::new("/etc/sb/node-a/recordings"));
    }

    #[test]
    fn postgres_without_a_state_directory_names_the_keys() {
        let mut c = config("[database]\nurl = \"postgres://sb@db/sb\"\n");
        let errors = c
            .resolve_state_paths(Some(Path::new("/etc/sb")), None)
            .unwrap_err();
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["database.spool_dir", "recording.dir"]);
        assert!(errors[0].message.contains("[state] dir"), "{}", errors[0]);

        let mut c = config(
            "[database]\nurl = \"postgres://sb@db/sb\"\nspool_dir = \"/a/spool\"\n[recording]\ndir = \"/a/rec\"\n",
        );
        c.resolve_state_paths(None, None).unwrap();
        assert_eq!(c.state.dir, None);
    }
}
