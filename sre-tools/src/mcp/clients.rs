//! The snippets that add the server to common MCP clients (`sre-agent mcp --print-config`).
//! A token is never written into a snippet: an HTTP snippet makes the client ask for it
//! (VS Code) or read it from the environment (Cursor, Claude Code).
//!
//! ```
//! use sre_tools::mcp::clients::{Client, Launch, snippet};
//! let launch = Launch::Stdio {
//!     command: "/usr/local/bin/sre-agent".into(),
//!     args: vec!["mcp".into(), "--scenario".into(), "bad-release".into()],
//! };
//! let text = snippet(Client::ClaudeDesktop, "sre-agent", &launch).unwrap();
//! assert!(text.contains("\"mcpServers\""));
//! ```

use serde_json::{Value, json};

/// An MCP client whose configuration format is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Client {
    /// Claude Desktop: `claude_desktop_config.json`.
    ClaudeDesktop,
    /// Claude Code: a `claude mcp add` command line.
    ClaudeCode,
    /// VS Code (GitHub Copilot agent mode): `.vscode/mcp.json`.
    Vscode,
    /// Cursor: `~/.cursor/mcp.json` or `.cursor/mcp.json`.
    Cursor,
}

/// How the client reaches the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launch {
    /// The client starts `command args…` and speaks MCP on its stdin and stdout.
    Stdio {
        /// The executable, best an absolute path.
        command: String,
        /// Its arguments (`mcp …`).
        args: Vec<String>,
    },
    /// The client connects to a running `--listen` server.
    Http {
        /// `http://127.0.0.1:PORT/mcp`.
        url: String,
        /// The environment variable that holds the bearer token on the client's side.
        token_env: String,
    },
}

/// What to do with the snippet, for the line printed before it.
pub fn instruction(client: Client) -> &'static str {
    match client {
        Client::ClaudeDesktop => {
            "Add to claude_desktop_config.json (Settings → Developer → Edit Config), merged into \"mcpServers\", and restart Claude Desktop:"
        }
        Client::ClaudeCode => "Run in a shell, in the project where Claude Code runs:",
        Client::Vscode => "Add to .vscode/mcp.json in the workspace (or to the user's mcp.json):",
        Client::Cursor => "Add to ~/.cursor/mcp.json (or .cursor/mcp.json in the project):",
    }
}

/// The snippet that adds the server `name` to `client`.
///
/// # Errors
/// A combination the client cannot be configured with from a file (Claude Desktop adds remote
/// servers as connectors in its settings).
pub fn snippet(client: Client, name: &str, launch: &Launch) -> Result<String, String> {
    let value: Value = match (client, launch) {
        (Client::ClaudeCode, Launch::Stdio { command, args }) => {
            let mut line = format!("claude mcp add {} -- {}", shell(name), shell(command));
            for a in args {
                line.push(' ');
                line.push_str(&shell(a));
            }
            return Ok(line);
        }
        (Client::ClaudeCode, Launch::Http { url, token_env }) => {
            return Ok(format!(
                "claude mcp add --transport http {} {} --header \"Authorization: Bearer ${{{token_env}}}\"",
                shell(name),
                shell(url)
            ));
        }
        (Client::ClaudeDesktop | Client::Cursor, Launch::Stdio { command, args }) => {
            json!({"mcpServers": {name: {"command": command, "args": args}}})
        }
        (Client::Vscode, Launch::Stdio { command, args }) => {
            json!({"servers": {name: {"type": "stdio", "command": command, "args": args}}})
        }
        (Client::ClaudeDesktop, Launch::Http { .. }) => {
            return Err("Claude Desktop adds remote MCP servers as connectors in its settings, not in claude_desktop_config.json; print the stdio snippet instead (without --listen)".into());
        }
        (Client::Cursor, Launch::Http { url, token_env }) => json!({"mcpServers": {name: {
            "url": url,
            "headers": {"Authorization": format!("Bearer ${{env:{token_env}}}")},
        }}}),
        (Client::Vscode, Launch::Http { url, .. }) => {
            let input = format!("{name}-token");
            json!({
                "inputs": [{
                    "type": "promptString",
                    "id": input,
                    "description": format!("Bearer token of the {name} MCP server"),
                    "password": true,
                }],
                "servers": {name: {
                    "type": "http",
                    "url": url,
                    "headers": {"Authorization": format!("Bearer ${{input:{input}}}")},
                }},
            })
        }
    };
    serde_json::to_string_pretty(&value).map_err(|e| e.to_string())
}

/// `s` as one POSIX shell word.
fn shell(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@,+%".contains(&b));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stdio() -> Launch {
        Launch::Stdio {
            command: "/opt/sre agent/sre-agent".into(),
            args: vec!["mcp".into(), "--scenario".into(), "bad-release".into()],
        }
    }

    fn http() -> Launch {
        Launch::Http {
            url: "http://127.0.0.1:8808/mcp".into(),
            token_env: "SRE_AGENT_MCP_TOKEN".into(),
        }
    }

    #[test]
    fn stdio_snippets_have_each_clients_shape() {
        let v: Value =
            serde_json::from_str(&snippet(Client::ClaudeDesktop, "sre-agent", &stdio()).unwrap())
                .unwrap();
        assert_eq!(
            v["mcpServers"]["sre-agent"]["command"],
            "/opt/sre agent/sre-agent"
        );
        assert_eq!(
            v["mcpServers"]["sre-agent"]["args"],
            json!(["mcp", "--scenario", "bad-release"])
        );
        let v: Value =
            serde_json::from_str(&snippet(Client::Vscode, "sre-agent", &stdio()).unwrap()).unwrap();
        assert_eq!(v["servers"]["sre-agent"]["type"], "stdio");
        let line = snippet(Client::ClaudeCode, "sre-agent", &stdio()).unwrap();
        assert_eq!(
            line,
            "claude mcp add sre-agent -- '/opt/sre agent/sre-agent' mcp --scenario bad-release"
        );
    }

    #[test]
    fn http_snippets_never_hold_the_token() {
        let v: Value =
            serde_json::from_str(&snippet(Client::Vscode, "sre-agent", &http()).unwrap()).unwrap();
        assert_eq!(
            v["servers"]["sre-agent"]["headers"]["Authorization"],
            "Bearer ${input:sre-agent-token}"
        );
        assert_eq!(v["inputs"][0]["password"], true);
        let v: Value =
            serde_json::from_str(&snippet(Client::Cursor, "sre-agent", &http()).unwrap()).unwrap();
        assert_eq!(
            v["mcpServers"]["sre-agent"]["headers"]["Authorization"],
            "Bearer ${env:SRE_AGENT_MCP_TOKEN}"
        );
        assert!(snippet(Client::ClaudeDesktop, "sre-agent", &http()).is_err());
    }

    #[test]
    fn shell_words_are_quoted() {
        assert_eq!(shell("plain-word"), "plain-word");
        assert_eq!(shell("it's"), "'it'\\''s'");
        assert_eq!(shell(""), "''");
        assert_eq!(shell("$(reboot)"), "'$(reboot)'");
    }
}
