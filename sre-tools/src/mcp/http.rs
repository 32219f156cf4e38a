//! The MCP server over streamable HTTP, at `/mcp`, behind a bearer token.
//!
//! Every request needs `Authorization: Bearer <token>` ([`ApiToken`], compared in constant time)
//! and is refused before anything else is looked at — the path, the `Host` header, the body:
//! missing or malformed credentials answer `401` with `WWW-Authenticate: Bearer`, a wrong token
//! `403`, each with a JSON body `{"error": "…", "status": <code>, "code": "<kind>"}`. Behind it,
//! rmcp's streamable HTTP service keeps one session (and one [`McpServer::new_session`]) per
//! client, so the server can ask that client for approvals in the middle of a tool call, and
//! checks `Host` against the loopback names and the address it listens on (DNS rebinding).
//!
//! ```no_run
//! # async fn demo(server: sre_tools::mcp::McpServer) -> std::io::Result<()> {
//! use sre_tools::serve::api::ApiToken;
//! let token = ApiToken::from_env("SRE_AGENT_MCP_TOKEN").map_err(std::io::Error::other)?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8808").await?;
//! sre_tools::mcp::http::serve(listener, server, token, std::future::pending()).await
//! # }
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;

use super::McpServer;
use crate::serve::api::{ApiToken, Refusal, bearer};
use crate::serve::secret::{API_TOKEN, Rule};

/// The path the MCP endpoint is served at.
pub const PATH: &str = "/mcp";

/// What the bearer token must look like (as the approvals API's: at least 16 bytes, one line of
/// printable ASCII); wrap a [`crate::serve::secret::ServiceSecret`] of this kind in an
/// [`ApiToken`].
pub const TOKEN: Rule = Rule {
    what: "the MCP server's bearer token",
    ..API_TOKEN
};

/// The `Host` names accepted: the loopback names, plus the address the server listens on when it
/// is a specific, non-loopback one.
pub fn allowed_hosts(listening: Option<SocketAddr>) -> Vec<String> {
    let mut hosts = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if let Some(addr) = listening {
        let ip = addr.ip();
        if !ip.is_loopback() && !ip.is_unspecified() {
            hosts.push(ip.to_string());
        }
    }
    hosts
}

/// The router: `/mcp` (rmcp's streamable HTTP service, one [`McpServer`] session per client),
/// everything behind `token`. `hosts` are the `Host` names accepted (see [`allowed_hosts`]).
/// Returns the router and a function that ends every session (call it when shutting down).
pub fn router(
    server: McpServer,
    token: ApiToken,
    hosts: Vec<String>,
) -> (Router, impl FnOnce() + Send + 'static) {
    let config = StreamableHttpServerConfig::default().with_allowed_hosts(hosts);
    let stop = config.cancellation_token.clone();
    let service = StreamableHttpService::new(
        move || Ok(server.new_session()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let router = Router::new()
        .route_service(PATH, service)
        .fallback(no_route)
        .layer(middleware::from_fn_with_state(
            Arc::new(token),
            authenticate,
        ));
    (router, move || stop.cancel())
}

/// Serves `server` on `listener` until `shutdown` resolves, then ends every session and waits
/// for a write being applied to finish.
///
/// # Errors
/// When the listener fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    server: McpServer,
    token: ApiToken,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let hosts = allowed_hosts(listener.local_addr().ok());
    let (app, stop) = router(server.clone(), token, hosts);
    let outcome = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            stop();
        })
        .await;
    server.writes_done().await;
    outcome
}

async fn no_route() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no such route: the MCP endpoint is {PATH}"),
    )
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = json!({"error": message.into(), "status": status.as_u16(), "code": code});
    (status, axum::Json(body)).into_response()
}

/// Refuses every request without the right bearer token, before anything else.
async fn authenticate(
    State(token): State<Arc<ApiToken>>,
    request: Request,
    next: Next,
) -> Response {
    match bearer(request.headers()) {
        Ok(presented) if token.matches(presented).await => next.run(request).await,
        Ok(_) => {
            tracing::warn!("mcp: a wrong bearer token was refused");
            error(
                StatusCode::FORBIDDEN,
                "forbidden",
                "the bearer token is not valid for this server",
            )
        }
        Err(refusal) => {
            let (message, challenge) = match refusal {
                Refusal::Missing => (
                    "authentication required: send `Authorization: Bearer <token>`".to_owned(),
                    "Bearer realm=\"sre-agent-mcp\"",
                ),
                Refusal::Malformed(why) => (
                    format!("malformed credentials: {why}; send `Authorization: Bearer <token>`"),
                    "Bearer realm=\"sre-agent-mcp\", error=\"invalid_request\"",
                ),
            };
            let mut response = error(StatusCode::UNAUTHORIZED, "unauthorized", message);
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_loopback_plus_a_specific_address() {
        let loopback = allowed_hosts(Some("127.0.0.1:8808".parse().unwrap()));
        assert_eq!(loopback, ["localhost", "127.0.0.1", "::1"]);
        let any = allowed_hosts(Some("0.0.0.0:8808".parse().unwrap()));
        assert_eq!(any.len(), 3);
        let lan = allowed_hosts(Some("10.1.2.3:8808".parse().unwrap()));
        assert!(lan.contains(&"10.1.2.3".to_owned()), "{lan:?}");
    }
}
