//! Serving the node: the HTTP server over [`App`] with its middleware and
//! routes, the background work beside it (the outbound federation worker,
//! report sending, the change-feed fan-out, session and key reloads), and
//! shutdown on a signal, draining what is in flight.

use crate::app::App;
use crate::db;
use actix_web::http::header;
use actix_web::{middleware, web, HttpServer};
use std::net::TcpListener;

/// Serves `app` on `listener` until SIGINT/SIGTERM; then open change-feed
/// streams end, in-flight requests finish, and queued audit records are
/// flushed.
pub async fn run(listener: TcpListener, app: App) -> std::io::Result<()> {
    serve(listener, web::Data::new(app), stop_signal()).await
}

/// [`run`], until `stop` completes instead of until a signal. Whoever else
/// holds a handle to `app` must let go of it for the writer thread to end.
pub async fn serve(
    listener: TcpListener,
    app: web::Data<App>,
    stop: impl std::future::Future<Output = ()> + 'static,
) -> std::io::Result<()> {
    let workers = app
        .config
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let data = app.clone();
    let origins = app.config.cors_origins.clone();
    let request_timeout = std::time::Duration::from_secs(app.config.request_timeout_secs);
    let server = HttpServer::new(move || {
        let http = data.metrics.http.clone();
        let log = data.refusal_log.clone();
        let node = data.clone();
        actix_web::App::new()
            .app_data(data.clone())
            // Innermost: sees every refusal, after `observe` gave the
            // request its id.
            .wrap_fn(crate::api::refusals::audit)
            .wrap(cors(&origins))
            // Every answer of a node may describe a family (a plan list's
            // titles, a history, an audit page, a refusal naming a plan):
            // no shared cache may keep it unless a handler says otherwise
            // (a plan read revalidates: `private, no-cache`).
            .wrap(
                middleware::DefaultHeaders::new()
                    .add(("X-Content-Type-Options", "nosniff"))
                    .add((actix_web::http::header::CACHE_CONTROL, "no-store")),
            )
            .wrap_fn(move |req, srv| {
                crate::observe::request(req, srv, &http, &log, Some(&node.trusted_proxies))
            })
            .configure(crate::api::routes)
    })
    .workers(workers)
    // Headers must arrive within the timeout (else 408), a closing client
    // gets a few seconds to acknowledge, and idle connections are closed
    // after the same time. Bodies are timed in `api::extract`.
    .client_request_timeout(request_timeout)
    .client_disconnect_timeout(std::time::Duration::from_secs(5))
    .keep_alive(request_timeout)
    .shutdown_timeout(30)
    .disable_signals()
    .listen(listener)?
    .run();
    // One process of those sharing the database runs the background work.
    let cluster = crate::cluster::start(
        &app.backend,
        app.plans.bell(),
        app.plans.stopping(),
        app.metrics.leader.clone(),
    )?;
    let (federated, report) = (app.federated(), app.clone());
    let interval = app.config.federation_interval_secs;
    actix_web::rt::spawn(crate::cluster::while_leading(cluster.leader(), move || {
        crate::federation::outbound::Worker::new(federated.clone(), interval).run()
    }));
    actix_web::rt::spawn(crate::cluster::while_leading(cluster.leader(), move || {
        crate::report::send::run(report.clone())
    }));
    actix_web::rt::spawn(reload_on_hangup(app.clone()));
    actix_web::rt::spawn(read_revoked_sessions(app.clone()));
    actix_web::rt::spawn(crate::streams::run(app.streams.clone(), app.plans.clone()));
    let handle = server.handle();
    let stopping = app.clone();
    actix_web::rt::spawn(async move {
        stop.await;
        tracing::info!("stopping: finishing in-flight requests");
        stopping.plans.stop_streams();
        // Hold no handle to the app while waiting: the writer thread ends
        // only once every handle is gone.
        drop(stopping);
        handle.stop(true).await;
    });
    server.await?;
    drop(cluster);
    app.writer.flush().await;
    Ok(())
}

/// Keeps `revoked_sessions` current with the database, where this and
/// every other process (and `wrapsync user disable`) revoke sessions. A
/// failed read keeps the set as it was and is tried again.
async fn read_revoked_sessions(app: web::Data<App>) {
    let mut stopping = app.plans.stopping();
    let mut tick = tokio::time::interval(crate::auth::sessions::POLL_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopping.changed() => return,
        }
        if *stopping.borrow() {
            return;
        }
        let now = db::now_ms();
        let since = app.revoked_sessions.since(now);
        match app
            .blocking(move |conn| crate::store::users::recently_revoked(conn, since))
            .await
        {
            Ok(read) => app.revoked_sessions.refresh(read, now),
            Err(e) => tracing::warn!(error = %e, "cannot read revoked sessions"),
        }
    }
}

/// Lets the configured web origins call the API from a browser; with none
/// configured, cross-origin calls get no CORS headers and browsers block them.
fn cors(origins: &[String]) -> actix_cors::Cors {
    origins
        .iter()
        .fold(actix_cors::Cors::default(), |cors, origin| {
            cors.allowed_origin(origin)
        })
        .allowed_methods(["GET", "POST"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_NONE_MATCH,
            header::IF_MATCH,
            header::HeaderName::from_static("last-event-id"),
            header::HeaderName::from_static("device-id"),
            header::HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([
            header::ETAG,
            header::LOCATION,
            header::RETRY_AFTER,
            header::HeaderName::from_static("x-request-id"),
        ])
        .max_age(600)
        // Answer other origins without CORS headers (the browser blocks
        // them) rather than with an error: same-origin pages send `Origin`
        // too.
        .block_on_origin_mismatch(false)
}

/// Reloads the keys on every SIGHUP, for the node's life.
async fn reload_on_hangup(app: web::Data<App>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP: keys reload only on restart");
            return;
        };
        while hangups.recv().await.is_some() {
            if let Err(e) = app.reload_keys() {
                tracing::error!(error = %e, "keys not reloaded: the keys in force are kept");
            }
            // Peer keys other processes on this database learnt meanwhile.
            let stored = app
                .blocking(|conn| {
                    Ok((
                        crate::store::peers::list(conn)?,
                        crate::store::peers::rotations(conn)?,
                    ))
                })
                .await;
            let reloaded = stored
                .map_err(|e| e.to_string())
                .and_then(|(peers, rotations)| {
                    app.federation.set_stored_and_rotations(peers, rotations)
                });
            if let Err(e) = reloaded {
                tracing::error!(error = %e, "peers not reloaded: the peers in force are kept");
            }
        }
    }
    #[cfg(not(unix))]
    drop(app);
}

/// SIGINT or SIGTERM.
pub async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
