//! `wrapsync node` and `wrapsync migrate`: a county node and its database.

use super::{database, private_data_dir, BoxError, ConfigFile};
use std::net::TcpListener;
use wrapsync_server::app::App;
use wrapsync_server::config::Config;
use wrapsync_server::observe::init_logging;

/// Runs a node until SIGINT/SIGTERM (SIGHUP reloads its keys, from the
/// config file read again).
pub fn serve(file: &ConfigFile) -> Result<(), BoxError> {
    let config = file.node()?;
    init_logging(config.log_format, config.log_file.as_deref())?;
    let listener = TcpListener::bind(config.listen)?;
    let url = format!("http://{}", listener.local_addr()?);
    let node_id = config.node_id.clone();
    let (mut app, writer_thread) = App::open(config)?;
    app.config_path = Some(file.path()?.to_path_buf());
    let runtime = actix_web::rt::System::new();
    runtime.block_on(async {
        println!(
            "{}",
            serde_json::json!({"event": "listening", "url": url, "node_id": node_id})
        );
        wrapsync_server::serve::run(listener, app).await?;
        Ok::<(), BoxError>(())
    })?;
    // The writer drains what is queued once every handle to it is gone,
    // including those of tasks the runtime still holds: end it first.
    drop(runtime);
    let _ = writer_thread.join();
    Ok(())
}

/// Creates or upgrades the node's database.
pub fn migrate(config: &Config) -> Result<(), BoxError> {
    private_data_dir(&config.data_dir)?;
    database(config)?;
    eprintln!("database is up to date");
    Ok(())
}
