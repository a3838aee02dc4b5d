//! A PoP of real lacquer nodes (two edges, two shards) on distinct loopback addresses
//! in front of one origin: each object is fetched from the origin once per PoP, a
//! cluster-scoped purge reaches every node, and a dead shard's keys move.

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde_json::Value;
use support::*;

fn free_addr(ip: [u8; 4]) -> SocketAddr {
    let l = std::net::TcpListener::bind((Ipv4Addr::from(ip), 0)).unwrap();
    l.local_addr().unwrap()
}

struct Member {
    name: &'static str,
    role: &'static str,
    public: SocketAddr,
    admin: SocketAddr,
}

async fn admin_call(addr: SocketAddr, method: http::Method, path: &str, body: &str) -> Value {
    let got = send(
        &client(),
        addr,
        method,
        path,
        &[("content-type", "application/json")],
        bytes::Bytes::from(body.to_owned()),
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text());
    serde_json::from_slice(&got.body).unwrap()
}

#[tokio::test]
async fn a_pop_fetches_each_object_once_and_purges_everywhere() {
    within(60, async {
        let origin = Origin::start(|_, _| Reply::ok("hello").cc("max-age=300")).await;
        let members: Vec<Member> = [
            ("edge-1", "edge", 31),
            ("edge-2", "edge", 32),
            ("shard-a", "shard", 33),
            ("shard-b", "shard", 34),
        ]
        .into_iter()
        .map(|(name, role, last)| Member {
            name,
            role,
            public: free_addr([127, 0, 0, last]),
            admin: free_addr([127, 0, 0, last]),
        })
        .collect();
        let peers: String = members
            .iter()
            .map(|m| {
                format!(
                    "  {{ name = \"{}\", address = \"{}\", admin = \"{}\", role = \"{}\" }},\n",
                    m.name, m.public, m.admin, m.role
                )
            })
            .collect();
        let mut nodes = Vec::new();
        for m in &members {
            let text = format!(
                "[node]\nname = \"{}\"\nrole = \"{}\"\n[[listen]]\naddress = \"{}\"\n[[origin]]\naddress = \"{}\"\n[origin.health]\nenabled = false\n[admin]\naddress = \"{}\"\n[log]\naccess_log = false\n[cluster]\nenabled = true\nhealth_interval = \"100ms\"\nfall = 1\nramp_up = \"0s\"\npeers = [\n{peers}]\n",
                m.name, m.role, m.public, origin.addr, m.admin
            );
            let cfg = Config::parse(&text, "t.toml").unwrap_or_else(|e| panic!("{e}"));
            nodes.push(start(cfg).await);
        }
        let host = [("host", "example.com")];
        for path in ["/a", "/b", "/c", "/d"] {
            for edge in &nodes[..2] {
                let got = edge.get_with(path, &host).await;
                assert_eq!(got.status, 200);
                assert_eq!(got.text(), "hello");
                let via = got.header("via").unwrap_or("");
                assert!(via.contains("shard-"), "filled through a shard: {via}");
            }
            assert_eq!(origin.count(path), 1, "{path}: once per PoP, not once per edge");
        }

        let status = admin_call(members[0].admin, http::Method::GET, "/cluster", "").await;
        assert_eq!(status["role"], "edge");
        assert_eq!(status["shards"], 2);

        let answer = admin_call(
            members[0].admin,
            http::Method::POST,
            "/purge",
            r#"{"urls":["http://example.com/a"],"scope":"cluster"}"#,
        )
        .await;
        assert_eq!(answer["scope"], "cluster");
        let acked = answer["nodes"].as_array().unwrap();
        assert_eq!(acked.len(), 4, "{answer}");
        assert!(acked.iter().all(|n| n["ok"] == true), "{answer}");
        nodes[1].get_with("/a", &host).await;
        assert_eq!(origin.count("/a"), 2, "purged on the shard too");

        // Stop both shards: the edges go to the origin themselves.
        let shard_b = nodes.pop().unwrap();
        let shard_a = nodes.pop().unwrap();
        shard_a.stop().await;
        shard_b.stop().await;
        let got = nodes[0].get_with("/e", &host).await;
        assert_eq!(got.status, 200);
        assert_eq!(origin.count("/e"), 1);
        let _ = IpAddr::V4(Ipv4Addr::LOCALHOST);
        for n in nodes {
            n.stop().await;
        }
    })
    .await;
}
