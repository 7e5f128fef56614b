//! Redis AUTH: a redis-server started here with `--requirepass` on a free port. The rule store
//! connects with the password in the URL (`redis://:pw@`, `redis://user:pw@`), and fails with a
//! clear error, which never quotes the password, without it or with a wrong one.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use traptor_actors::config::redact_url_password;
use traptor_actors::rule_store::load_all;
use traptor_actors::watcher::{redis_address, WatcherSettings};
use traptor_core::rules::{SlotId, StreamType};

const PASSWORD: &str = "RedisAuth-pw-6d1e3b";

/// A password-protected redis-server of its own, stopped on drop.
struct AuthRedis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl AuthRedis {
    fn start() -> AuthRedis {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--requirepass",
                PASSWORD,
            ])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (scripts/test.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        AuthRedis {
            child,
            port,
            _dir: dir,
        }
    }

    fn url(&self, userinfo: &str) -> String {
        format!("redis://{userinfo}127.0.0.1:{}/9", self.port)
    }
}

impl Drop for AuthRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn load(url: &str) -> Result<usize, String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    let wanted = |slot: &SlotId| slot.id == "auth";
    let sets = load_all(&mut con, &wanted)
        .await
        .map_err(|e| e.to_string())?;
    Ok(sets.values().map(|s| s.rules.len()).sum())
}

#[actix_rt::test]
#[ignore = "needs Redis and Kafka: run scripts/test.sh"]
async fn the_rule_store_authenticates_with_the_password_in_the_url() {
    let redis = AuthRedis::start();
    let client = redis::Client::open(redis.url(&format!(":{PASSWORD}@"))).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let slot = SlotId::new(StreamType::Track, "auth");
    let _: () = redis::cmd("HSET")
        .arg(format!("{}1", slot.rule_key_prefix()))
        .arg("rule_id")
        .arg("1")
        .arg("value")
        .arg("happy")
        .query_async(&mut con)
        .await
        .unwrap();

    assert_eq!(load(&redis.url(&format!(":{PASSWORD}@"))).await, Ok(1));
    assert_eq!(
        load(&redis.url(&format!("default:{PASSWORD}@"))).await,
        Ok(1)
    );

    for (userinfo, expected) in [
        ("", "NOAUTH"),
        (":not-the-password@", "WRONGPASS"),
        ("default:nope@", "WRONGPASS"),
    ] {
        let url = redis.url(userinfo);
        let error = load(&url)
            .await
            .expect_err("must not load without the right password");
        assert!(
            error.to_uppercase().contains(expected) || error.to_lowercase().contains("auth"),
            "{userinfo:?}: the error should say authentication failed: {error}"
        );
        assert!(
            !error.contains(PASSWORD) && !error.contains("not-the-password"),
            "{error}"
        );
    }
}

/// What the watcher and the config print of a Redis URL never holds its password.
#[test]
fn redis_urls_are_logged_without_their_password() {
    for url in [
        format!("redis://:{PASSWORD}@10.0.0.1:6379/0"),
        format!("redis://traptor:{PASSWORD}@10.0.0.1:6379/3"),
        format!("rediss://traptor:{PASSWORD}@redis.internal:6380/0"),
    ] {
        let address = redis_address(&url);
        assert!(!address.contains(PASSWORD), "{address}");
        match redis::Client::open(url.as_str()) {
            Ok(_) => assert!(
                address.contains("6379") || address.contains("6380"),
                "{address}"
            ),
            // rediss:// needs the redis crate's TLS feature, which this build may lack: the
            // error must say so, and not quote the URL.
            Err(e) => {
                assert!(url.starts_with("rediss://"), "{url}: {e}");
                assert!(e.to_string().to_lowercase().contains("tls"), "{e}");
                assert!(!e.to_string().contains(PASSWORD), "{e}");
            }
        }
        let redacted = redact_url_password(&url);
        assert!(
            !redacted.contains(PASSWORD) && redacted.contains("<redacted>"),
            "{redacted}"
        );
        let settings = WatcherSettings::new(url.clone(), "traptor-notify");
        let shown = format!("{settings:?}");
        assert!(!shown.contains(PASSWORD), "{shown}");
        // An invalid URL's error does not quote it either.
        let broken = url.replace("redis", "rediz");
        if let Err(e) = redis::Client::open(broken.as_str()) {
            assert!(!e.to_string().contains(PASSWORD), "{e}");
        }
    }
}
