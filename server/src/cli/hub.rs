//! `wrapsync hub`: the state office's hub.

use super::{BoxError, ConfigFile};
use std::net::TcpListener;
use wrapsync_server::hub::{Hub, HubConfig};
use wrapsync_server::observe::init_logging;

/// Runs the hub until SIGINT/SIGTERM.
pub fn serve(file: &ConfigFile) -> Result<(), BoxError> {
    let config = HubConfig::load(Some(file.path()?), std::env::vars())?;
    init_logging(config.log_format, config.log_file.as_deref())?;
    let listener = TcpListener::bind(config.listen)?;
    let url = format!("http://{}", listener.local_addr()?);
    let hub_id = config.hub_id.clone();
    let hub = Hub::open(config)?;
    let public_key = hub.key.public_key().to_string();
    let runtime = actix_web::rt::System::new();
    runtime.block_on(async {
        println!(
            "{}",
            serde_json::json!({
                "event": "listening",
                "url": url,
                "node_id": hub_id,
                "hub_id": hub_id,
                "public_key": public_key,
            })
        );
        wrapsync_server::hub::serve(
            listener,
            actix_web::web::Data::new(hub),
            wrapsync_server::serve::stop_signal(),
        )
        .await?;
        Ok::<(), BoxError>(())
    })
}
