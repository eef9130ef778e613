//! Route registration that remembers what it registered. actix cannot list
//! its routes, so every node and hub route goes through [`Routes`], and a
//! test holds the OpenAPI documents to exactly that list.

use actix_web::http::Method;
use actix_web::{web, FromRequest, Handler, Responder};

/// Registers routes on an actix `ServiceConfig` and records each one's
/// method and path template.
pub struct Routes<'a> {
    cfg: &'a mut web::ServiceConfig,
    served: Vec<(Method, &'static str)>,
}

impl<'a> Routes<'a> {
    pub fn new(cfg: &'a mut web::ServiceConfig) -> Self {
        Routes {
            cfg,
            served: Vec::new(),
        }
    }

    pub fn get<F, Args>(&mut self, path: &'static str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add(Method::GET, path, handler)
    }

    pub fn post<F, Args>(&mut self, path: &'static str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add(Method::POST, path, handler)
    }

    fn add<F, Args>(&mut self, method: Method, path: &'static str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.cfg
            .route(path, web::method(method.clone()).to(handler));
        self.served.push((method, path));
        self
    }

    /// The configuration, for what is not a route (app data, the default
    /// service).
    pub fn config(&mut self) -> &mut web::ServiceConfig {
        self.cfg
    }

    /// Every (method, path template) registered, in order.
    pub fn served(self) -> Vec<(Method, &'static str)> {
        self.served
    }
}
