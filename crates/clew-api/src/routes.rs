//! [`Routes`]: the router, built so that it can say what it serves.

use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{self, MethodRouter};
use axum::Router;

use crate::AppState;

/// A router that records each method and path as it is added, so that a test can hold every
/// route to `docs/openapi.yaml`.
pub(crate) struct Routes {
    router: Router<AppState>,
    served: Vec<(Method, String)>,
}

impl Routes {
    pub(crate) fn new() -> Self {
        Self { router: Router::new(), served: Vec::new() }
    }

    pub(crate) fn get<H: Handler<T, AppState>, T: 'static>(self, path: impl Into<String>, handler: H) -> Self {
        self.add(Method::GET, path.into(), routing::get(handler))
    }

    pub(crate) fn post<H: Handler<T, AppState>, T: 'static>(self, path: impl Into<String>, handler: H) -> Self {
        self.add(Method::POST, path.into(), routing::post(handler))
    }

    pub(crate) fn put<H: Handler<T, AppState>, T: 'static>(self, path: impl Into<String>, handler: H) -> Self {
        self.add(Method::PUT, path.into(), routing::put(handler))
    }

    pub(crate) fn delete<H: Handler<T, AppState>, T: 'static>(self, path: impl Into<String>, handler: H) -> Self {
        self.add(Method::DELETE, path.into(), routing::delete(handler))
    }

    /// Adds `route` for `method` at `path`; methods added at one path separately share it.
    fn add(mut self, method: Method, path: String, route: MethodRouter<AppState>) -> Self {
        self.router = self.router.route(&path, route);
        self.served.push((method, path));
        self
    }

    pub(crate) fn merge(mut self, other: Routes) -> Self {
        self.router = self.router.merge(other.router);
        self.served.extend(other.served);
        self
    }

    pub(crate) fn into_parts(self) -> (Router<AppState>, Vec<(Method, String)>) {
        (self.router, self.served)
    }
}
