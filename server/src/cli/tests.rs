//! Every invocation the README, the scripts and the tests use parses as
//! it did when each command took its own `--config`.

use super::keys::KeysCommand;
use super::peer::PeerCommand;
use super::user::UserCommand;
use super::*;
use clap::CommandFactory;
use wrapsync_shared::roles::Role;

fn parse(line: &str) -> Cli {
    let words = std::iter::once("wrapsync").chain(line.split_whitespace());
    Cli::try_parse_from(words).unwrap_or_else(|e| panic!("`wrapsync {line}`: {e}"))
}

fn config_of(cli: &Cli) -> Option<&str> {
    cli.config.as_deref().and_then(Path::to_str)
}

#[test]
fn the_definition_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn config_goes_after_the_command_or_before_it() {
    for line in [
        "node --config node.toml",
        "--config node.toml node",
        "hub --config node.toml",
        "migrate --config node.toml",
        "keygen --config node.toml",
        "peer list --config node.toml",
        "keys rotate-jwt --config node.toml",
        "keys database-key --config node.toml",
        "--config node.toml user disable --username fran",
    ] {
        assert_eq!(config_of(&parse(line)), Some("node.toml"), "{line}");
    }
    assert!(matches!(parse("node --config F").command, Command::Node));
    assert!(matches!(parse("hub --config F").command, Command::Hub));
    assert!(matches!(
        parse("migrate --config F").command,
        Command::Migrate
    ));
    assert!(matches!(
        parse("keygen --config F").command,
        Command::Keygen
    ));
}

#[test]
fn a_command_that_reads_a_config_says_when_there_is_none() {
    let cli = Cli::try_parse_from(["wrapsync", "migrate"]).unwrap_or_else(|e| panic!("{e}"));
    if std::env::var_os("WRAPSYNC_CONFIG").is_none() {
        let missing = ConfigFile(cli.config).path().err().map(|e| e.kind());
        assert_eq!(
            missing,
            Some(clap::error::ErrorKind::MissingRequiredArgument)
        );
    }
}

#[test]
fn user_commands() {
    let cli = parse(
        "user add --config F --username fran --role facilitator --display-name Fran --password pw",
    );
    assert_eq!(config_of(&cli), Some("F"));
    let Command::User(UserCommand::Add {
        username,
        role,
        display_name,
        password,
    }) = cli.command
    else {
        panic!("not user add");
    };
    assert_eq!(
        (
            username.as_str(),
            role,
            display_name.as_deref(),
            password.as_str()
        ),
        ("fran", Role::Facilitator, Some("Fran"), "pw")
    );
    let Command::User(UserCommand::Disable { username }) =
        parse("user disable --config F --username carla").command
    else {
        panic!("not user disable");
    };
    assert_eq!(username, "carla");
    let Command::User(UserCommand::Enable { username }) =
        parse("user enable --config F --username carla").command
    else {
        panic!("not user enable");
    };
    assert_eq!(username, "carla");
    // A role is one of the roles.
    assert!(Cli::try_parse_from(
        "wrapsync user add --config F --username x --role boss --password p".split(' ')
    )
    .is_err());
}

#[test]
fn peer_commands() {
    // A base64url key may start with `-`.
    let Command::Peer(PeerCommand::Add {
        id,
        url,
        public_key,
        from_hub,
    }) = parse("peer add --config F --id county-b --url https://b.example.org --public-key -AbC_d")
        .command
    else {
        panic!("not peer add");
    };
    assert_eq!(
        (id.as_str(), url.as_deref(), public_key.as_deref(), from_hub),
        (
            "county-b",
            Some("https://b.example.org"),
            Some("-AbC_d"),
            false
        )
    );
    let Command::Peer(PeerCommand::Add { id, from_hub, .. }) =
        parse("peer add --config F --id county-a --from-hub").command
    else {
        panic!("not peer add --from-hub");
    };
    assert_eq!((id.as_str(), from_hub), ("county-a", true));
    // A URL and a key, or the hub: not neither, not both.
    for bad in [
        "peer add --config F --id x",
        "peer add --config F --id x --url https://x",
        "peer add --config F --id x --from-hub --url https://x",
    ] {
        assert!(
            Cli::try_parse_from(std::iter::once("wrapsync").chain(bad.split(' '))).is_err(),
            "{bad}"
        );
    }
    assert!(matches!(
        parse("peer list --config F").command,
        Command::Peer(PeerCommand::List)
    ));
    let Command::Peer(PeerCommand::Remove { id }) =
        parse("peer remove --config F --id county-b").command
    else {
        panic!("not peer remove");
    };
    assert_eq!(id, "county-b");
}

#[test]
fn key_commands() {
    assert!(matches!(
        parse("keys rotate-jwt --config F").command,
        Command::Keys(KeysCommand::RotateJwt)
    ));
    assert!(matches!(
        parse("keys rotate-node --config F").command,
        Command::Keys(KeysCommand::RotateNode {
            grace_secs: 604_800
        })
    ));
    assert!(matches!(
        parse("keys rotate-node --config F --grace-secs 60").command,
        Command::Keys(KeysCommand::RotateNode { grace_secs: 60 })
    ));
    assert!(matches!(
        parse("keys database-key --config F").command,
        Command::Keys(KeysCommand::DatabaseKey)
    ));
}

#[test]
fn backup_restore_and_report() {
    let Command::Backup(backup) = parse("backup --config F --out /b/node.bak").command else {
        panic!("not backup");
    };
    assert_eq!(backup.out, Path::new("/b/node.bak"));
    let Command::Restore(restore) = parse("restore --config F --from /b/node.bak").command else {
        panic!("not restore");
    };
    assert_eq!(
        (restore.from.as_path(), restore.force),
        (Path::new("/b/node.bak"), false)
    );
    let Command::Restore(restore) = parse("restore --config F --from B --force").command else {
        panic!("not restore --force");
    };
    assert!(restore.force);
    let Command::Report(report) = parse("report --config F --period 2026-11 --send").command else {
        panic!("not report");
    };
    assert_eq!(
        (report.period.to_string(), report.send),
        ("2026-11".to_string(), true)
    );
}

#[cfg(feature = "demo")]
#[test]
fn demo() {
    let Command::Demo(demo) = parse("demo").command else {
        panic!("not demo");
    };
    assert_eq!(
        (demo.dir.as_path(), demo.base_port),
        (Path::new("wrapsync-demo"), 7400)
    );
    let Command::Demo(demo) = parse("demo --dir /tmp/d --base-port 7500").command else {
        panic!("not demo --dir");
    };
    assert_eq!(
        (demo.dir.as_path(), demo.base_port),
        (Path::new("/tmp/d"), 7500)
    );
}
