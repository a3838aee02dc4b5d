//! What a node knows of its peers outlives reloads and restarts, and a hung peer does
//! not hold a cluster purge: a purge owed to an unreachable shard is delivered after
//! the node that took it was reloaded and restarted (the shard no longer serves the
//! purged objects); a peer that never answers is listed as pending within the purge
//! deadline; a reload keeps unchanged peers' health and probes the peers it adds.

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

fn free_addr(last: u8) -> SocketAddr {
    let l = std::net::TcpListener::bind((Ipv4Addr::new(127, 0, 0, last), 0)).unwrap();
    l.local_addr().unwrap()
}

/// A TCP relay to `target` that can be cut and restored: a peer reachable or not
/// without stopping it (a stopped lacquer would come back with an empty cache, and
/// would prove nothing about purges it missed).
struct Relay {
    addr: SocketAddr,
    target: SocketAddr,
    task: Option<JoinHandle<()>>,
}

impl Relay {
    async fn new(addr: SocketAddr, target: SocketAddr) -> Relay {
        let mut r = Relay {
            addr,
            target,
            task: None,
        };
        r.open().await;
        r
    }

    async fn open(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        let target = self.target;
        self.task = Some(tokio::spawn(async move {
            // Aborting this task drops the set, which aborts every relayed connection:
            // a cut relay leaves no pooled connection alive behind it.
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                conns.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
    }

    fn cut(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// A node `name` (a shard) that knows shard `other` at `other_public`, with admin
/// calls and health checks for `other` going to `other_admin`.
#[allow(clippy::too_many_arguments)]
fn shard_config(
    name: &str,
    public: SocketAddr,
    admin: SocketAddr,
    origin: SocketAddr,
    others: &[(&str, SocketAddr, SocketAddr)],
    extra: &str,
) -> Config {
    let mut peers = format!(
        "  {{ name = \"{name}\", address = \"{public}\", admin = \"{admin}\", role = \"shard\" }},\n"
    );
    for (n, p, a) in others {
        peers.push_str(&format!(
            "  {{ name = \"{n}\", address = \"{p}\", admin = \"{a}\", role = \"shard\" }},\n"
        ));
    }
    let text = format!(
        "[node]\nname = \"{name}\"\nrole = \"shard\"\n[[listen]]\naddress = \"{public}\"\n[[origin]]\naddress = \"{origin}\"\n[origin.health]\nenabled = false\n[admin]\naddress = \"{admin}\"\n[log]\naccess_log = false\n[cluster]\nenabled = true\nhealth_interval = \"100ms\"\nfall = 1\nrise = 1\n{extra}peers = [\n{peers}]\n"
    );
    Config::parse(&text, "t.toml").unwrap_or_else(|e| panic!("{e}"))
}

fn member<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["members"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["name"] == name))
        .unwrap_or_else(|| panic!("{name} not in {status}"))
}

async fn wait_for<F, Fut>(what: &str, mut ok: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = Instant::now() + Duration::from_secs(10);
    while !ok().await {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The fault the issue found: a purge queued for a down shard was thrown away by a
/// reload, and the shard served the purged objects again. Now the purge survives a
/// reload and a restart of the node that took it, and reaches the shard when it is
/// reachable again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purges_owed_to_an_unreachable_peer_survive_reload_and_restart() {
    within(60, async {
        let origin = Origin::start(|_, _| Reply::ok("v").cc("max-age=300")).await;
        let state = temp_path("cluster-state");
        let _ = std::fs::remove_dir_all(&state);
        let (a_pub, a_adm) = (free_addr(71), free_addr(71));
        let (b_pub, b_adm) = (free_addr(72), free_addr(72));
        let relay_addr = free_addr(73);
        let b = start(shard_config(
            "b",
            b_pub,
            b_adm,
            origin.addr,
            &[("a", a_pub, a_adm)],
            "",
        ))
        .await;
        let host = [("host", "example.com")];
        // The issue's run: 83 objects purged while their shard was unreachable.
        let many: Vec<String> = (0..83).map(|i| format!("/m{i}")).collect();
        for path in many.iter().map(String::as_str).chain(["/x", "/y"]) {
            b.get_with(path, &host).await;
            assert!(b.get_with(path, &host).await.is_hit(), "{path} cached on b");
        }
        let mut relay = Relay::new(relay_addr, b_adm).await;
        let extra = format!(
            "state_dir = \"{}\"\nfanout_retries = 0\nfanout_timeout = \"500ms\"\n",
            state.display()
        );
        let a_cfg = |extra: &str| {
            shard_config(
                "a",
                a_pub,
                a_adm,
                origin.addr,
                &[("b", b_pub, relay_addr)],
                extra,
            )
        };
        let a = start(a_cfg(&extra)).await;
        relay.cut();
        wait_for("b marked down", || async move {
            let s = admin_call(a_adm, http::Method::GET, "/cluster", "").await;
            member(&s, "b")["up"] == false
        })
        .await;

        let mut urls: Vec<String> = many.iter().map(|p| format!("http://example.com{p}")).collect();
        urls.push("http://example.com/x".into());
        let body = serde_json::json!({ "urls": urls, "scope": "cluster" }).to_string();
        let answer = admin_call(a_adm, http::Method::POST, "/purge", &body).await;
        let ack = &answer["nodes"][1];
        assert_eq!(ack["node"], "b", "{answer}");
        assert_eq!(ack["pending"], true, "{answer}");

        // A reload that changes the cluster section rebuilds the view.
        let live = a.running.as_ref().unwrap().live.clone();
        let note = live
            .reload(a_cfg(&format!("{extra}health_timeout = \"900ms\"\n")))
            .await
            .unwrap();
        assert!(note.contains("carried over"), "{note}");
        let s = admin_call(a_adm, http::Method::GET, "/cluster", "").await;
        assert_eq!(member(&s, "b")["purges_behind"], 1, "{s}");
        assert_eq!(
            member(&s, "b")["up"],
            false,
            "health kept across the reload: {s}"
        );

        admin_call(
            a_adm,
            http::Method::POST,
            "/purge",
            r#"{"urls":["http://example.com/y"],"scope":"cluster"}"#,
        )
        .await;
        // A restart: a new process state, the same state directory.
        a.stop().await;
        let a = start(a_cfg(&extra)).await;
        let s = admin_call(a_adm, http::Method::GET, "/cluster", "").await;
        assert_eq!(s["purge_log"]["head"], 2, "{s}");
        assert_eq!(s["purge_log"]["durable"], true, "{s}");
        assert_eq!(member(&s, "b")["purges_behind"], 2, "{s}");

        assert!(
            b.get_with("/x", &host).await.is_hit(),
            "b never got the purge yet"
        );
        relay.open().await;
        wait_for("the purges replayed to b", || async move {
            let s = admin_call(a_adm, http::Method::GET, "/cluster", "").await;
            member(&s, "b")["purges_behind"] == 0
        })
        .await;
        let mut served_again = 0;
        for path in many.iter().map(String::as_str).chain(["/x", "/y"]) {
            let got = b.get_with(path, &host).await;
            if got.is_hit() {
                served_again += 1;
            }
            assert_eq!(origin.count(path), 2, "{path}");
        }
        // The figure for the issue's note (it was 66 of 83 before).
        println!("purged while unreachable, then a reload and a restart of the node that took the purges: {served_again} of 85 served again by the shard");
        assert_eq!(served_again, 0);
        relay.cut();
        a.stop().await;
        b.stop().await;
        let _ = std::fs::remove_dir_all(&state);
    })
    .await;
}

/// A peer that accepts connections and never answers (hung, not yet marked down)
/// held a cluster purge for fanout_timeout x retries (15 s by default). Now the purge
/// answers within `purge_deadline`, listing the peer as pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_peer_is_pending_after_the_purge_deadline() {
    within(30, async {
        let origin = Origin::start(|_, _| Reply::ok("v").cc("max-age=300")).await;
        let hung = std::net::TcpListener::bind((Ipv4Addr::new(127, 0, 0, 74), 0)).unwrap();
        let hung_addr = hung.local_addr().unwrap();
        let hung_public = free_addr(74);
        let (a_pub, a_adm) = (free_addr(75), free_addr(75));
        // Probes time out after 20 s: the peer stays "up" for the whole test, as a hung
        // process does until its health check catches it.
        let a = start(shard_config(
            "a",
            a_pub,
            a_adm,
            origin.addr,
            &[("b", hung_public, hung_addr)],
            "health_timeout = \"20s\"\nfanout_timeout = \"10s\"\nfanout_retries = 1\npurge_deadline = \"300ms\"\n",
        ))
        .await;
        let started = Instant::now();
        let answer = admin_call(
            a_adm,
            http::Method::POST,
            "/purge",
            r#"{"urls":["http://example.com/x"],"scope":"cluster"}"#,
        )
        .await;
        let took = started.elapsed();
        let ack = &answer["nodes"][1];
        assert_eq!(ack["pending"], true, "{answer}");
        assert_eq!(ack["ok"], false, "{answer}");
        assert!(
            took < Duration::from_secs(5),
            "the caller waited {took:?}, as if for fanout_timeout"
        );
        let s = admin_call(a_adm, http::Method::GET, "/cluster", "").await;
        assert_eq!(member(&s, "b")["purges_behind"], 1, "{s}");
        a.stop().await;
        drop(hung);
    })
    .await;
}

/// A reload used to mark every peer up without a probe. Now a peer that is the same
/// keeps its health, and a peer the reload adds is down until its first probe passes,
/// then ramps up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_peer_health_and_probes_new_peers() {
    within(30, async {
        let origin = Origin::start(|_, _| Reply::ok("v").cc("max-age=300")).await;
        let (a_pub, a_adm) = (free_addr(76), free_addr(76));
        let (dead, dead_admin) = (free_addr(77), free_addr(77));
        let (c_pub, c_adm) = (free_addr(78), free_addr(78));
        let a_cfg = |others: &[(&str, SocketAddr, SocketAddr)], extra: &str| {
            shard_config("a", a_pub, a_adm, origin.addr, others, extra)
        };
        let a = start(a_cfg(&[("b", dead, dead_admin)], "ramp_up = \"30s\"\n")).await;
        wait_for("b marked down", || async move {
            let s = admin_call(a_adm, http::Method::GET, "/cluster", "").await;
            member(&s, "b")["up"] == false
        })
        .await;
        // c answers on its admin port; its health checks go there.
        let c = start(shard_config(
            "c",
            c_pub,
            c_adm,
            origin.addr,
            &[("a", a_pub, a_adm)],
            "",
        ))
        .await;
        let live = a.running.as_ref().unwrap().live.clone();
        live.reload(a_cfg(
            &[("b", dead, dead_admin), ("c", c_pub, c_adm)],
            "ramp_up = \"30s\"\n",
        ))
        .await
        .unwrap();
        let s = admin_call(a_adm, http::Method::GET, "/cluster", "").await;
        assert_eq!(member(&s, "b")["up"], false, "b's health kept: {s}");
        let c_then = member(&s, "c");
        assert!(
            c_then["up"] == false || c_then["probed"] == true,
            "c is not assumed up before a probe: {s}"
        );
        wait_for("c probed and up", || async move {
            let s = admin_call(a_adm, http::Method::GET, "/cluster", "").await;
            member(&s, "c")["up"] == true
        })
        .await;
        let s = admin_call(a_adm, http::Method::GET, "/cluster", "").await;
        let ramp = member(&s, "c")["ramp"].as_f64().unwrap();
        assert!(ramp < 1.0, "a new peer ramps up: {s}");
        a.stop().await;
        c.stop().await;
    })
    .await;
}

/// A stopped node stops probing its peers: its health checks end with it, not when the
/// last handle to its cluster view happens to go (in a process that goes on, a stopped
/// node's probes kept reaching whatever later listened on a peer's address).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_stops_probing_its_peers() {
    within(20, async {
        let origin = Origin::start(|_, _| Reply::ok("v").cc("max-age=300")).await;
        let peer = TcpListener::bind((Ipv4Addr::new(127, 0, 0, 79), 0))
            .await
            .unwrap();
        let peer_admin = peer.local_addr().unwrap();
        let probes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let p2 = probes.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = peer.accept().await {
                p2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                drop(s);
            }
        });
        let (a_pub, a_adm) = (free_addr(80), free_addr(80));
        let a = start(shard_config(
            "a",
            a_pub,
            a_adm,
            origin.addr,
            &[("b", free_addr(79), peer_admin)],
            "",
        ))
        .await;
        let count = || probes.load(std::sync::atomic::Ordering::SeqCst);
        wait_for("a first probe", || async { count() > 0 }).await;
        a.stop().await;
        let after_stop = count();
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(count(), after_stop, "probes went on after the node stopped");
    })
    .await;
}
