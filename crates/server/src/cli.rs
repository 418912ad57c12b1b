//! The subcommands of the `switchboard` binary. Exit codes follow sysexits: 64 for a bad
//! configuration or usage, 65 for bad input data, 69 when a service is unavailable, 1 otherwise.

use std::path::Path;
use std::process::ExitCode;

use crate::config::{Config, ConfigError};

/// Exit code for a configuration that cannot be used (EX_USAGE).
pub const EXIT_CONFIG: u8 = 64;
/// Exit code for input data with errors (EX_DATAERR).
pub const EXIT_DATA: u8 = 65;
/// Exit code when a needed service (the database) cannot be reached (EX_UNAVAILABLE).
pub const EXIT_UNAVAILABLE: u8 = 69;

/// Reads and validates the configuration, or the built-in demo when no file is given, and
/// places its state paths in the state directory (`$STATE_DIRECTORY` under systemd).
pub fn load_config(path: Option<&Path>) -> Result<Config, Vec<ConfigError>> {
    let mut config = match path {
        None => Config::demo(),
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                vec![ConfigError {
                    path: String::new(),
                    message: format!("cannot read {}: {e}", path.display()),
                }]
            })?;
            Config::from_toml(&text)?
        }
    };
    config.resolve_state_paths(
        path.and_then(Path::parent),
        std::env::var_os("STATE_DIRECTORY").as_deref(),
    )?;
    config.resolve_tls_paths(path.and_then(Path::parent))?;
    config.resolve_advertised_address()?;
    Ok(config)
}

fn report_config_errors(path: Option<&Path>, errors: &[ConfigError]) {
    let file = path.map_or_else(
        || "built-in demo configuration".to_owned(),
        |p| p.display().to_string(),
    );
    for error in errors {
        eprintln!("error: {file}: {error}");
    }
    eprintln!(
        "error: {file}: {} error{} in the configuration; nothing was started",
        errors.len(),
        if errors.len() == 1 { "" } else { "s" }
    );
}

/// `switchboard check-config <file>`.
pub fn check_config(path: &Path) -> ExitCode {
    match load_config(Some(path)) {
        Ok(config) => {
            println!(
                "{}: valid ({} trunk(s), {} agent(s), {} queue(s))",
                path.display(),
                config.trunks.len(),
                config.agents.len(),
                config.queues.len()
            );
            if let (true, Some(ip)) = (config.advertised_is_name(), config.advertised_ip()) {
                println!(
                    "advertised address {} resolves to {ip} (written into SDP)",
                    config.sip.advertised_address
                );
            }
            if let (Some(dir), Some(source)) = (&config.state.dir, config.state.source) {
                println!("state directory {} (from {source})", dir.display());
            }
            println!(
                "database {}, spool {}, recordings {}",
                crate::server::redact_url(&config.database.url),
                config.database.spool_dir.display(),
                config.recording.dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            report_config_errors(Some(path), &errors);
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("switchboard")
        .build()
}

/// `switchboard [run] [--config FILE]`.
pub fn run(path: Option<&Path>) -> ExitCode {
    let config = match load_config(path) {
        Ok(config) => config,
        Err(errors) => {
            report_config_errors(path, &errors);
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Err(message) = crate::server::preflight(&config) {
        report_config_errors(
            path,
            &[ConfigError {
                path: message.0,
                message: message.1,
            }],
        );
        return ExitCode::from(EXIT_CONFIG);
    }
    crate::ops::logging::init();
    crate::ops::os_limits::raise_open_files();
    crate::ops::os_limits::no_huge_pages();
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(crate::server::run(config, path.is_none())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// What a subcommand that works on the database needs: the loaded configuration (its
/// errors reported) and a runtime, with logging on; else the exit code.
fn database_command(path: Option<&Path>) -> Result<(Config, tokio::runtime::Runtime), ExitCode> {
    let config = load_config(path).map_err(|errors| {
        report_config_errors(path, &errors);
        ExitCode::from(EXIT_CONFIG)
    })?;
    crate::ops::logging::init();
    let rt = runtime().map_err(|e| {
        eprintln!("error: cannot start the async runtime: {e}");
        ExitCode::FAILURE
    })?;
    Ok((config, rt))
}

/// `switchboard migrate [--config FILE]`.
pub fn migrate(path: Option<&Path>) -> ExitCode {
    let (config, rt) = match database_command(path) {
        Ok(ready) => ready,
        Err(code) => return code,
    };
    let url = config.database.url.clone();
    match rt.block_on(switchboard_store::Store::migrate(&url)) {
        Ok(()) => {
            println!("migrations applied to {}", crate::server::redact_url(&url));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "error: cannot migrate {}: {e}",
                crate::server::redact_url(&url)
            );
            ExitCode::from(EXIT_UNAVAILABLE)
        }
    }
}

/// `switchboard clients import <file.csv> [--config FILE]`.
pub fn import_clients(path: Option<&Path>, file: &Path) -> ExitCode {
    let (config, rt) = match database_command(path) {
        Ok(ready) => ready,
        Err(code) => return code,
    };
    let url = config.database.url.clone();
    let result = rt.block_on(async {
        // The import needs the database itself, not the spool: refuse when it is down.
        switchboard_store::Store::migrate(&url).await?;
        let store = switchboard_store::Store::open(
            &url,
            &config.database.spool_dir,
            switchboard_store::StoreOptions::default(),
        )
        .await?;
        let numbers = &config.numbers;
        let report = store
            .clients()
            .import_csv_with(file, &|n: &str| numbers.normalize(n))
            .await;
        let _ = store.close(std::time::Duration::from_secs(5)).await;
        report
    });
    match result {
        Ok(report) => {
            for (line, message) in &report.errors {
                eprintln!("{}:{line}: {message}", file.display());
            }
            println!(
                "{}: imported {} client(s), {} bad row(s)",
                file.display(),
                report.imported,
                report.errors.len()
            );
            if report.errors.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_DATA)
            }
        }
        Err(e) => {
            eprintln!("error: {}: {e}", file.display());
            ExitCode::from(EXIT_UNAVAILABLE)
        }
    }
}
