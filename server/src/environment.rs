//! `WRAPSYNC_<KEY>` environment variables over a config file's keys, for
//! the node's config and the hub's alike.
//!
//! Every key of the config struct can be set this way, save the few each
//! config lists as file-only; the keys are read from the struct itself, so
//! a new key is overridable the day it is added. Any other `WRAPSYNC_*`
//! variable, save those wrapsync's programs read for themselves
//! ([`OTHER_VARIABLES`]), stops the start naming the nearest key: a
//! misspelt override would otherwise be silently ignored.
//!
//! Values: a number is a number; `true` and `false` are booleans; a value
//! written `{ … }` is a TOML inline table (`WRAPSYNC_RATE_LIMIT_PER_USER=
//! '{ per_second = 10, burst = 100 }'`); a list key takes its items
//! comma-separated; anything else is text.

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// Variables with the prefix that are not config keys: the config file's
/// path and the new user's password (`wrapsync`), the log filter, and
/// those of the test harness and the tools, which a shell set up for them
/// passes on to the node.
pub const OTHER_VARIABLES: &[&str] = &[
    "WRAPSYNC_CONFIG",
    "WRAPSYNC_PASSWORD",
    "WRAPSYNC_LOG",
    "WRAPSYNC_BIN",
    "WRAPSYNC_CLIENT_BIN",
    "WRAPSYNC_LOAD_BIN",
    "WRAPSYNC_TEST_PG",
    "WRAPSYNC_SIM_SEED",
    "WRAPSYNC_SIM_SEEDS",
    "WRAPSYNC_SIM_STEPS",
    "WRAPSYNC_PROXY_SEED",
];

const PREFIX: &str = "WRAPSYNC_";

/// How one config struct takes the environment's overrides.
pub struct EnvRules {
    /// Keys set in the config file only (lists of tables, such as peers).
    pub file_only: &'static [&'static str],
    /// Keys whose variable holds a comma-separated list.
    pub lists: &'static [&'static str],
    /// Keys whose variable holds a fraction (`0.5`).
    pub fractions: &'static [&'static str],
}

impl EnvRules {
    /// Sets each key of config struct `T` that `env` overrides in `table`;
    /// refuses a `WRAPSYNC_*` variable that is neither one of its keys nor
    /// one of [`OTHER_VARIABLES`].
    pub fn apply<T: for<'de> Deserialize<'de>>(
        &self,
        table: &mut toml::Table,
        env: impl Iterator<Item = (String, String)>,
    ) -> Result<(), String> {
        let keys = keys_of::<T>();
        for (name, value) in env {
            let Some(key) = name.strip_prefix(PREFIX).map(str::to_ascii_lowercase) else {
                continue;
            };
            if OTHER_VARIABLES.contains(&name.as_str()) {
                continue;
            }
            if self.file_only.contains(&key.as_str()) {
                return Err(format!("{name}: `{key}` is set in the config file only"));
            }
            if !keys.contains(&key.as_str()) {
                return Err(format!(
                    "{name} is not a setting; did you mean {}?",
                    self.nearest(keys, &name)
                ));
            }
            let value = self.value(&key, value);
            table.insert(key, value);
        }
        Ok(())
    }

    /// Whether config struct `T` takes variable `name` as one of its keys.
    pub fn takes<T: for<'de> Deserialize<'de>>(&self, name: &str) -> bool {
        name.strip_prefix(PREFIX)
            .map(str::to_ascii_lowercase)
            .is_some_and(|key| {
                keys_of::<T>().contains(&key.as_str()) && !self.file_only.contains(&key.as_str())
            })
    }

    /// The variable closest to `name`: an overridable key's, or another
    /// variable wrapsync reads.
    fn nearest(&self, keys: &[&str], name: &str) -> String {
        keys.iter()
            .filter(|k| !self.file_only.contains(k))
            .map(|k| format!("{PREFIX}{}", k.to_ascii_uppercase()))
            .chain(OTHER_VARIABLES.iter().map(|v| v.to_string()))
            .min_by_key(|candidate| strsim::levenshtein(candidate, name))
            .unwrap_or_default()
    }

    /// The TOML value variable `value` stands for under `key`; what is not
    /// the type the key wants is left for serde to refuse.
    fn value(&self, key: &str, value: String) -> toml::Value {
        if self.lists.contains(&key) {
            let items = value
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| toml::Value::String(item.into()))
                .collect();
            return toml::Value::Array(items);
        }
        if self.fractions.contains(&key) {
            return value
                .parse::<f64>()
                .map(toml::Value::Float)
                .unwrap_or(toml::Value::String(value));
        }
        if value.trim_start().starts_with('{') {
            if let Some(table) = format!("v = {value}")
                .parse::<toml::Table>()
                .ok()
                .and_then(|mut t| t.remove("v"))
            {
                return table;
            }
        }
        match value.as_str() {
            "true" => toml::Value::Boolean(true),
            "false" => toml::Value::Boolean(false),
            _ => value
                .parse::<i64>()
                .map(toml::Value::Integer)
                .unwrap_or(toml::Value::String(value)),
        }
    }
}

/// Every key of config struct `T`, as its `Deserialize` names them (what
/// `deny_unknown_fields` accepts).
pub fn keys_of<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    // Always an error: the struct's fields are all it is asked for.
    let _ = T::deserialize(StructFields(&mut fields));
    fields
}

/// A deserializer that only notes the fields a struct asks for.
struct StructFields<'a>(&'a mut &'static [&'static str]);

impl<'de> Deserializer<'de> for StructFields<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("only a struct's fields are read"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(de::Error::custom("fields noted"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, ConfigError};
    use crate::hub::HubConfig;

    fn table(text: &str) -> toml::Table {
        text.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    /// `value` as a `WRAPSYNC_*` variable writes it.
    fn variable(value: &toml::Value) -> String {
        match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Array(items) => items.iter().map(variable).collect::<Vec<_>>().join(","),
            toml::Value::Table(t) => {
                let fields: Vec<String> = t.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                format!("{{ {} }}", fields.join(", "))
            }
            other => other.to_string(),
        }
    }

    /// Each key of `sample`, set by its variable over `base`, gives the
    /// config that setting it in the file gives; and `sample` holds every
    /// key `T` has but its file-only ones, so a new key cannot be left out.
    fn every_key_is_overridable<T: for<'de> Deserialize<'de> + std::fmt::Debug>(
        rules: &EnvRules,
        base: &str,
        sample: &str,
        load: impl Fn(&toml::Table, Vec<(String, String)>) -> Result<T, ConfigError>,
    ) {
        let sample = table(sample);
        let mut sampled: Vec<&str> = sample.keys().map(String::as_str).collect();
        let mut expected: Vec<&str> = keys_of::<T>()
            .iter()
            .copied()
            .filter(|k| !rules.file_only.contains(k))
            .collect();
        sampled.sort_unstable();
        expected.sort_unstable();
        assert_eq!(
            sampled, expected,
            "give each config key a sample value here, or list it as file-only"
        );
        let base = table(base);
        for (key, value) in &sample {
            let mut in_file = base.clone();
            in_file.insert(key.clone(), value.clone());
            let from_file = load(&in_file, vec![]);
            let name = format!("WRAPSYNC_{}", key.to_ascii_uppercase());
            let from_env = load(&base, vec![(name.clone(), variable(value))]);
            let (from_file, from_env) = match (from_file, from_env) {
                (Ok(a), Ok(b)) => (a, b),
                (a, b) => panic!("{key}: file {:?}, {name}: {:?}", a.err(), b.err()),
            };
            assert_eq!(format!("{from_file:?}"), format!("{from_env:?}"), "{name}");
        }
    }

    fn load_node(file: &toml::Table, env: Vec<(String, String)>) -> Result<Config, ConfigError> {
        let mut tmp = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
        std::io::Write::write_all(&mut tmp, file.to_string().as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        Config::load(Some(tmp.path()), env.into_iter())
    }

    fn load_hub(file: &toml::Table, env: Vec<(String, String)>) -> Result<HubConfig, ConfigError> {
        let mut tmp = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
        std::io::Write::write_all(&mut tmp, file.to_string().as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        HubConfig::load(Some(tmp.path()), env.into_iter())
    }

    const NODE_BASE: &str = r#"
        node_id = "county-a"
        data_dir = "/tmp/x"
        hub_url = "https://hub.example.org"
        hub_id = "state"
        dp_epsilon_per_year = 1.0
    "#;

    #[test]
    fn every_node_key_but_peers_is_overridable() {
        every_key_is_overridable(
            &crate::config::ENV,
            NODE_BASE,
            r#"
            node_id = "county-b"
            listen = "127.0.0.1:9000"
            data_dir = "/tmp/y"
            database_url = "postgres://localhost/x"
            database_key_file = "/tmp/k"
            jwt_secret = "a-secret-of-more-than-thirty-two-characters"
            jwt_previous_secrets = ["old-secret-one", "old-secret-two"]
            access_token_ttl_secs = 600
            refresh_token_ttl_secs = 86400
            max_body_bytes = 2048
            max_sync_bytes = 1048576
            max_document_bytes = 1000000
            max_document_ops = 5000
            plan_quota_bytes = 100000
            ops_answer_plan_bytes = 1000
            write_bytes_per_user = { per_second = 100.0, burst = 1000.0 }
            rate_limit_per_user = { per_second = 5, burst = 20 }
            rate_limit_per_peer = { per_second = 0.5, burst = 20.0 }
            rate_limit_login_per_ip = { per_second = 1.0, burst = 3.0 }
            trusted_proxies = ["10.0.0.0/8", "192.168.1.1"]
            request_timeout_secs = 10
            body_min_bytes_per_sec = 1000
            max_buffered_body_bytes = 1073741824
            rate_limit_peer_bytes = { per_second = 1000.0, burst = 1073741824.0 }
            rate_limit_user_bytes = { per_second = 2000.0, burst = 1073741824.0 }
            rate_limit_peer_new_plans = { per_second = 0.25, burst = 10.0 }
            replay_ids_per_peer = 100
            max_streams_per_user = 2
            max_streams = 10
            phone_region = "US"
            cache_plans = 5
            workers = 3
            compact_after_chunks = 9
            cors_origins = ["https://a.example.org", "http://b.example.org:8080"]
            federation_interval_secs = 5
            federation_ca_file = "/tmp/ca.pem"
            transfer_keeps_copy = false
            hub_url = "https://hub2.example.org"
            hub_id = "state-2"
            public_url = "https://a.example.org"
            report_interval_secs = 60
            dp_epsilon_per_year = 0.5
            dp_cans_items_per_youth = 4
            dp_flex_cents_per_youth = 1000
            metrics_token_file = "/tmp/m"
            log_format = "json"
            log_file = "/tmp/log"
            refusal_interval_secs = 5
            refusal_rows_per_interval = 2
            sync_states_per_user = 7
            sync_state_idle_secs = 99
            sync_state_max_bytes = 4096
            sync_state_cache_bytes = 100000
            max_sync_ops_member = 11
            max_sync_ops_staff = 12
            max_peer_sync_ops = 13
            max_peer_batch_ops = 600000
            "#,
            load_node,
        );
    }

    #[test]
    fn every_hub_key_but_nodes_is_overridable() {
        every_key_is_overridable(
            &crate::hub::config::ENV,
            "hub_id = \"state\"\ndata_dir = \"/tmp/h\"\n",
            r#"
            hub_id = "state-2"
            listen = "127.0.0.1:9001"
            data_dir = "/tmp/h2"
            database_url = "postgres://localhost/h"
            key_file = "/tmp/hub.pem"
            max_body_bytes = 4096
            body_min_bytes_per_sec = 1000
            max_buffered_body_bytes = 1000000
            workers = 2
            metrics_token_file = "/tmp/m"
            log_format = "json"
            log_file = "/tmp/hub.log"
            max_youth_per_node = 50
            rate_limit_per_node = { per_second = 1, burst = 5 }
            rate_limit_revisions_per_period = { per_second = 0.01, burst = 2.0 }
            complete_period_min_nodes = 2
            "#,
            load_hub,
        );
    }

    #[test]
    fn a_misspelt_variable_stops_the_start_naming_the_nearest_key() {
        let base = table(NODE_BASE);
        let refused = |name: &str| {
            load_node(&base, vec![(name.to_string(), "1".to_string())])
                .err()
                .map(|e| e.to_string())
                .unwrap_or_else(|| panic!("{name} was taken"))
        };
        let error = refused("WRAPSYNC_MAX_BODYBYTES");
        assert!(
            error.contains("WRAPSYNC_MAX_BODYBYTES") && error.contains("WRAPSYNC_MAX_BODY_BYTES?"),
            "{error}"
        );
        let error = refused("WRAPSYNC_RATE_LIMIT_PER_USR");
        assert!(error.contains("WRAPSYNC_RATE_LIMIT_PER_USER?"), "{error}");
        assert!(refused("WRAPSYNC_PEERS").contains("config file only"));
        // The hub's keys are not the node's, and the other way round.
        assert!(refused("WRAPSYNC_MAX_YOUTH_PER_NODE").contains("not a setting"));
        let hub = table("hub_id = \"state\"\ndata_dir = \"/tmp/h\"\n");
        let error = load_hub(&hub, vec![("WRAPSYNC_NODE_ID".into(), "a".into())])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            error.contains("WRAPSYNC_NODE_ID is not a setting"),
            "{error}"
        );
        let error = load_hub(&hub, vec![("WRAPSYNC_NODES".into(), "a".into())])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("config file only"), "{error}");
    }

    #[test]
    fn variables_that_are_not_settings_are_let_through() {
        let env: Vec<(String, String)> = OTHER_VARIABLES
            .iter()
            .map(|name| (name.to_string(), "x".to_string()))
            .chain([("HOME".to_string(), "/root".to_string())])
            .collect();
        assert!(load_node(&table(NODE_BASE), env.clone()).is_ok());
        let hub = table("hub_id = \"state\"\ndata_dir = \"/tmp/h\"\n");
        assert!(load_hub(&hub, env).is_ok());
    }

    #[test]
    fn a_rate_limit_is_set_as_an_inline_table_and_checked() {
        let base = table(NODE_BASE);
        let set = |value: &str| {
            load_node(
                &base,
                vec![("WRAPSYNC_RATE_LIMIT_PER_USER".into(), value.into())],
            )
        };
        let config = set("{ per_second = 2, burst = 50 }").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (
                config.rate_limit_per_user.per_second,
                config.rate_limit_per_user.burst
            ),
            (2.0, 50.0)
        );
        for bad in [
            "{ per_second = 0, burst = 50 }",
            "{ per_second = 2 }",
            "2:50",
            "{",
        ] {
            assert!(set(bad).is_err(), "{bad}");
        }
        // The default is a person's scale (see `Config::rate_limit_per_user`).
        let default = load_node(&base, vec![]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (
                default.rate_limit_per_user.per_second,
                default.rate_limit_per_user.burst
            ),
            (10.0, 200.0)
        );
    }
}
