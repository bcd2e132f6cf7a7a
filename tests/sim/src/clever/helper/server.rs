//! The loopback listener of one service application: an actix-web server on `127.0.0.1:0`
//! (one worker, no signal handling) driven by the fake's System arbiter, serving the helper's
//! routes for that application only.

use std::io;
use std::net::{SocketAddr, TcpListener};

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpServer};

use super::routes::{self, HelperContext};
use crate::clever::model::SharedWorld;

/// Opens the listener of `app_id`'s helper; its address and the handle that closes it. Call
/// without holding the world's lock.
pub fn open(world: &SharedWorld, app_id: &str) -> io::Result<(SocketAddr, ServerHandle)> {
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    let addr = listener.local_addr()?;
    let data = web::Data::new(HelperContext {
        world: world.clone(),
        app_id: app_id.to_owned(),
    });
    let server =
        HttpServer::new(move || App::new().app_data(data.clone()).configure(routes::routes))
            .workers(1)
            .disable_signals()
            .shutdown_timeout(0)
            .listen(listener)?
            .run();
    let handle = server.handle();
    let spawned = world.lock().spawn_on_system(move || async move {
        // Its end (a stop, or an accept failure) closes the listener either way.
        let _ = server.await;
    });
    if spawned {
        Ok((addr, handle))
    } else {
        Err(io::Error::other("the fake Clever Cloud is stopping"))
    }
}
