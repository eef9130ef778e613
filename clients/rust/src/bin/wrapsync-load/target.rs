//! What the load is aimed at: a node on this machine only, and the user to
//! log in as, given outright or taken from a `wrapsync demo` file.

use reqwest::Url;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::net::{IpAddr, ToSocketAddrs};

/// Refuses any URL that could send load off this machine: only plain http to
/// 127.0.0.0/8, `::1`, or a `localhost` that resolves to loopback alone.
pub fn check_loopback(url: &Url) -> Result<(), String> {
    if url.scheme() != "http" {
        return Err(format!(
            "{url}: only http:// to a loopback address is accepted"
        ));
    }
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = if let Ok(ip) = host.parse::<IpAddr>() {
        ip.is_loopback()
    } else if host.eq_ignore_ascii_case("localhost") {
        let port = url.port_or_known_default().unwrap_or(80);
        let addrs: Vec<_> = (host, port)
            .to_socket_addrs()
            .map_err(|e| format!("{url}: cannot resolve localhost: {e}"))?
            .collect();
        !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback())
    } else {
        false
    };
    if loopback {
        Ok(())
    } else {
        Err(format!(
            "{url}: the load tool only targets loopback (127.x, ::1, localhost)"
        ))
    }
}

/// A user to log in as, and the node they belong to when the demo file says.
#[derive(Debug, Clone, PartialEq)]
pub struct Login {
    pub username: String,
    pub password: String,
    pub url: Option<String>,
    pub role: Option<String>,
}

/// Picks a user out of a `demo.json`. The file's exact shape is the demo's
/// business, so this reads it loosely: any object with a `username` (and a
/// `password` of its own or of an enclosing object) is a user; the node URL
/// is the nearest enclosing `url`, or that of the node its `node`/`node_id`
/// names. Without `wanted`, a facilitator is preferred (they may create
/// plans and write every field the scenarios touch), then a supervisor.
pub fn login_from_demo(demo: &Value, wanted: Option<&str>) -> Result<Login, String> {
    let mut node_urls = HashMap::new();
    collect_node_urls(demo, &mut node_urls);
    let mut users = Vec::new();
    collect_users(demo, None, None, &node_urls, &mut users);
    if users.is_empty() {
        return Err("the demo file lists no user with a username and password".into());
    }
    let rank = |l: &Login| match l.role.as_deref() {
        Some("facilitator") => 0,
        Some("supervisor") => 1,
        _ => 2,
    };
    let chosen = match wanted {
        Some(name) => users.iter().find(|l| l.username == name),
        None => users.iter().min_by_key(|l| rank(l)),
    };
    let mut login = chosen
        .cloned()
        .ok_or_else(|| format!("the demo file has no user `{}`", wanted.unwrap_or("")))?;
    if login.url.is_none() {
        login.url = demo.get("url").and_then(Value::as_str).map(str::to_string);
    }
    Ok(login)
}

fn str_field<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    m.get(key).and_then(Value::as_str)
}

/// node id → url, from every object that has both.
fn collect_node_urls(v: &Value, out: &mut HashMap<String, String>) {
    match v {
        Value::Object(m) => {
            if let (Some(id), Some(url)) = (
                str_field(m, "node_id").or_else(|| str_field(m, "id")),
                str_field(m, "url"),
            ) {
                out.entry(id.to_string()).or_insert_with(|| url.to_string());
            }
            for (key, child) in m {
                // A map keyed by node id: {"nodes": {"county-a": {"url": …}}}.
                if let Some(url) = child.get("url").and_then(Value::as_str) {
                    out.entry(key.clone()).or_insert_with(|| url.to_string());
                }
                collect_node_urls(child, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_node_urls(i, out)),
        _ => {}
    }
}

fn collect_users(
    v: &Value,
    url: Option<&str>,
    password: Option<&str>,
    node_urls: &HashMap<String, String>,
    out: &mut Vec<Login>,
) {
    match v {
        Value::Object(m) => {
            let url = str_field(m, "url").or(url);
            let password = str_field(m, "password").or(password);
            if let (Some(username), Some(password)) = (str_field(m, "username"), password) {
                let node = str_field(m, "node").or_else(|| str_field(m, "node_id"));
                let url = node
                    .and_then(|n| node_urls.get(n))
                    .map(String::as_str)
                    .or(url);
                out.push(Login {
                    username: username.to_string(),
                    password: password.to_string(),
                    url: url.map(str::to_string),
                    role: str_field(m, "role").map(str::to_string),
                });
            }
            for child in m.values() {
                collect_users(child, url, password, node_urls, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                collect_users(item, url, password, node_urls, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parsed(s: &str) -> Url {
        match Url::parse(s) {
            Ok(u) => u,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn only_loopback_http_is_a_target() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://127.1.2.3/",
            "http://[::1]:9/",
            "http://localhost:18400",
        ] {
            assert_eq!(check_loopback(&parsed(ok)), Ok(()), "{ok}");
        }
        for bad in [
            "http://10.0.0.1:8080",
            "http://192.168.1.1/",
            "http://0.0.0.0:80/",
            "http://[::]:80/",
            "http://example.com/",
            "http://localhost.example.com/",
            "https://127.0.0.1/",
            "http://[::ffff:10.0.0.1]/",
        ] {
            assert!(check_loopback(&parsed(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_facilitator_is_taken_from_a_demo_with_nodes_and_users() {
        let demo = json!({
            "hub": {"url": "http://127.0.0.1:18400", "users": [{"username":"admin","password":"a","role":"supervisor"}]},
            "nodes": [
                {"node_id":"county-a","url":"http://127.0.0.1:18401",
                 "users":[{"username":"sam","password":"s","role":"supervisor"},
                          {"username":"fay","password":"f","role":"facilitator"}]},
                {"node_id":"county-b","url":"http://127.0.0.1:18402","users":[]}
            ]
        });
        let login = login_from_demo(&demo, None);
        assert_eq!(
            login,
            Ok(Login {
                username: "fay".into(),
                password: "f".into(),
                url: Some("http://127.0.0.1:18401".into()),
                role: Some("facilitator".into()),
            })
        );
        let sam = login_from_demo(&demo, Some("sam"));
        assert!(matches!(sam, Ok(l) if l.password == "s"));
        assert!(login_from_demo(&demo, Some("nobody")).is_err());
    }

    #[test]
    fn users_may_name_their_node_and_share_a_password() {
        let demo = json!({
            "password": "demo-pass",
            "nodes": {"county-a": {"url": "http://127.0.0.1:18401"}},
            "users": [{"username":"cara","role":"caregiver","node":"county-a"}]
        });
        let login = login_from_demo(&demo, None);
        assert!(matches!(login, Ok(ref l)
            if l.password == "demo-pass" && l.url.as_deref() == Some("http://127.0.0.1:18401")));
        assert!(login_from_demo(&json!({"nodes":[]}), None).is_err());
    }
}
