//! `wrapsync report`: one month's indicator report, printed and sent.

use super::BoxError;
use clap::Args;
use wrapsync_server::app::App;
use wrapsync_server::config::Config;
use wrapsync_shared::indicators::Period;

#[derive(Args)]
pub struct Report {
    /// The month, YYYY-MM.
    #[arg(long)]
    pub period: Period,
    /// Also submit it to the hub (`hub_url`).
    #[arg(long)]
    pub send: bool,
}

impl Report {
    /// Makes (and with `send` submits) one month's report (its release,
    /// with privacy on), then lets the writer store the audit row before
    /// exiting.
    pub fn run(self, config: Config) -> Result<(), BoxError> {
        let Report { period, send } = self;
        if send && config.hub_url.is_none() {
            return Err("--send needs hub_url and hub_id in the config".into());
        }
        let (app, writer_thread) = App::open(config)?;
        let runtime = actix_web::rt::System::new();
        let result = runtime.block_on(async {
            let report = wrapsync_server::report::release::report_for(&app, period, "cli")
                .await
                .map_err(|e| wrapsync_server::report::describe(&e))?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            if send {
                let http = app.federation.http_client()?;
                let answer = wrapsync_server::report::send::submit(&app, &http, &report).await?;
                println!("{}", serde_json::to_string_pretty(&answer)?);
            }
            Ok::<(), BoxError>(())
        });
        drop(app);
        drop(runtime);
        let _ = writer_thread.join();
        result
    }
}
