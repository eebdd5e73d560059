//! GraphiQL at `GET /graphql`, from assets embedded in the binary (GraphiQL 3.9.0 and React
//! 18.3.1, vendored in `assets/graphiql/`, see its README): it works offline and never asks a
//! CDN. It opens on an example query with the `Authorization` header ready in its headers pane.

use actix_web::http::header;
use actix_web::middleware::Compress;
use actix_web::{HttpResponse, web};

const PAGE: &str = include_str!("../../assets/graphiql/index.html");

/// The files the page loads, by name under `/graphiql/`.
const ASSETS: [(&str, &str, &[u8]); 4] = [
    (
        "graphiql.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/graphiql/graphiql.min.js"),
    ),
    (
        "graphiql.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/graphiql/graphiql.min.css"),
    ),
    (
        "react.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/graphiql/react.production.min.js"),
    ),
    (
        "react-dom.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/graphiql/react-dom.production.min.js"),
    ),
];

pub fn routes(config: &mut web::ServiceConfig) {
    config.route("/graphql", web::get().to(page)).service(
        web::scope("/graphiql")
            // 1.5 MB of assets, a third of that gzipped.
            .wrap(Compress::default())
            .route("/{file}", web::get().to(asset)),
    );
}

async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(PAGE)
}

async fn asset(file: web::Path<String>) -> HttpResponse {
    match ASSETS.iter().find(|(name, _, _)| *name == file.as_str()) {
        // The names carry no version, so caches check back daily; an upgrade reaches browsers
        // within a day.
        Some((_, content_type, bytes)) => HttpResponse::Ok()
            .content_type(*content_type)
            .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
            .body(*bytes),
        None => HttpResponse::NotFound().finish(),
    }
}
