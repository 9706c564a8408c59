//! The route table with what HTTP asks around it: each route is registered with
//! its methods through [`Table`], which remembers them, so a request no route takes
//! gets the right answer (`unrouted`): 405 with `Allow` for a known path and another
//! method, 204 with `Allow` for OPTIONS, a 308 to the slashed address for a GET or
//! HEAD without its trailing slash (Django's APPEND_SLASH), 404 otherwise. HEAD is
//! served as GET by the front layer (the connection drops the body and keeps the
//! length), so every GET route answers HEAD.

use std::sync::Arc;

use actix_web::dev::ResourceDef;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, FromRequest, Handler, HttpRequest, HttpResponse, Responder};

use crate::AppError;

/// The template a request was routed by (`/lessons/{id}/`), put on each resource
/// [`Table`] registers, so telemetry reads it back as a `&'static str` instead of
/// walking the routes again and allocating the name (actix's `match_pattern`, about
/// 150 ns a request: docs/performance.md).
#[derive(Debug, Clone, Copy)]
pub struct RouteTemplate(pub &'static str);

/// The route template of a routed request: [`RouteTemplate`] where [`Table`]
/// registered the route, else actix's own walk of the routes (other listeners'
/// routes), else `(unmatched)`.
#[must_use]
pub fn route_of(req: &HttpRequest) -> std::borrow::Cow<'static, str> {
    match req.app_data::<RouteTemplate>() {
        Some(t) => std::borrow::Cow::Borrowed(t.0),
        None => std::borrow::Cow::Owned(
            req.match_pattern()
                .unwrap_or_else(|| "(unmatched)".to_owned()),
        ),
    }
}

/// The known paths and the methods each takes.
#[derive(Debug, Default)]
pub struct Known {
    routes: Vec<(ResourceDef, Vec<Method>)>,
}

impl Known {
    /// The methods `path` takes (HEAD wherever GET, and OPTIONS), in the order an
    /// `Allow` header lists them; `None` for a path no route has.
    #[must_use]
    pub fn allowed(&self, path: &str) -> Option<Vec<Method>> {
        let mut methods: Vec<Method> = Vec::new();
        for (def, ms) in &self.routes {
            if def.is_match(path) {
                for m in ms {
                    if !methods.contains(m) {
                        methods.push(m.clone());
                    }
                }
            }
        }
        if methods.is_empty() {
            return None;
        }
        if methods.contains(&Method::GET) && !methods.contains(&Method::HEAD) {
            methods.push(Method::HEAD);
        }
        methods.push(Method::OPTIONS);
        let rank = |m: &Method| {
            [
                Method::GET,
                Method::HEAD,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
                Method::OPTIONS,
            ]
            .iter()
            .position(|x| x == m)
            .unwrap_or(99)
        };
        methods.sort_by_key(rank);
        Some(methods)
    }
}

/// Registers routes on a `ServiceConfig` and remembers their methods; `finish`
/// installs the default service that uses them.
#[allow(missing_debug_implementations)] // ServiceConfig is not Debug
pub struct Table<'a> {
    cfg: &'a mut web::ServiceConfig,
    known: Known,
}

impl<'a> Table<'a> {
    /// A table over `cfg`.
    pub fn new(cfg: &'a mut web::ServiceConfig) -> Table<'a> {
        Table {
            cfg,
            known: Known::default(),
        }
    }

    fn add<F, Args>(&mut self, method: Method, path: &'static str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        // The method guard on the resource, as `ServiceConfig::route` puts it: a
        // resource whose route refuses the method would answer 405 itself instead of
        // letting the path's other resources (GET and POST /login) try.
        self.cfg.service(
            web::resource(path)
                .guard(actix_web::guard::Method(method.clone()))
                .app_data(RouteTemplate(path))
                .route(web::method(method.clone()).to(handler)),
        );
        match self
            .known
            .routes
            .iter_mut()
            .find(|(d, _)| d.pattern() == Some(path))
        {
            Some((_, methods)) => methods.push(method),
            None => self
                .known
                .routes
                .push((ResourceDef::new(path), vec![method])),
        }
        self
    }

    /// A GET route (HEAD too).
    pub fn get<F, Args>(&mut self, path: &'static str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add(Method::GET, path, handler)
    }

    /// A POST route.
    pub fn post<F, Args>(&mut self, path: &'static str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add(Method::POST, path, handler)
    }

    /// A route whose handler answers every method itself (static and media files).
    pub fn any<F, Args>(&mut self, path: &'static str, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.cfg.service(
            web::resource(path)
                .app_data(RouteTemplate(path))
                .route(web::to(handler)),
        );
        self
    }

    /// Installs the default service for requests no route took.
    pub fn finish(self) {
        let known = Arc::new(self.known);
        self.cfg.default_service(web::to(move |req: HttpRequest| {
            let known = Arc::clone(&known);
            async move { unrouted(&known, &req) }
        }));
    }
}

fn allow_value(methods: &[Method]) -> HeaderValue {
    let list: Vec<&str> = methods.iter().map(Method::as_str).collect();
    HeaderValue::from_str(&list.join(", ")).unwrap_or_else(|_| HeaderValue::from_static("GET"))
}

/// The answer to a request no route took (see the module's comment).
fn unrouted(known: &Known, req: &HttpRequest) -> Result<HttpResponse, AppError> {
    let path = req.path();
    let method = req.method();
    if let Some(methods) = known.allowed(path) {
        if method == Method::OPTIONS {
            return Ok(HttpResponse::NoContent()
                .insert_header((header::ALLOW, allow_value(&methods)))
                .finish());
        }
        let list: Vec<&str> = methods.iter().map(Method::as_str).collect();
        return Err(AppError::MethodNotAllowed {
            message: format!(
                "{method} is not allowed at {path}; it takes {}",
                list.join(", ")
            ),
            allow: list.join(", "),
        });
    }
    if !path.ends_with('/') {
        let slashed = format!("{path}/");
        let takes_get = known
            .allowed(&slashed)
            .is_some_and(|m| m.contains(&Method::GET));
        if takes_get {
            if matches!(*method, Method::GET | Method::HEAD) {
                let to = match req.query_string() {
                    "" => slashed,
                    q => format!("{slashed}?{q}"),
                };
                return Ok(HttpResponse::build(StatusCode::PERMANENT_REDIRECT)
                    .insert_header((header::LOCATION, to))
                    .finish());
            }
            // A redirect would lose the body of a POST: say where it belongs.
            return Err(AppError::NotFound(format!(
                "there is nothing at {path}; did you mean {slashed} (with a trailing slash)?"
            )));
        }
    }
    Err(AppError::NotFound(
        "there is nothing at this address".to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_listed_with_head_and_options() {
        let known = Known {
            routes: vec![
                (ResourceDef::new("/login"), vec![Method::GET, Method::POST]),
                (ResourceDef::new("/lessons/{id}/"), vec![Method::GET]),
                (
                    ResourceDef::new("/lessons/{id}/attendance"),
                    vec![Method::POST],
                ),
            ],
        };
        let names = |p: &str| {
            known
                .allowed(p)
                .map(|m| m.iter().map(Method::as_str).collect::<Vec<_>>().join(", "))
        };
        assert_eq!(names("/login").as_deref(), Some("GET, HEAD, POST, OPTIONS"));
        assert_eq!(names("/lessons/7/").as_deref(), Some("GET, HEAD, OPTIONS"));
        assert_eq!(
            names("/lessons/7/attendance").as_deref(),
            Some("POST, OPTIONS")
        );
        assert_eq!(names("/lessons/7"), None);
        assert_eq!(names("/nothing"), None);
    }
}
