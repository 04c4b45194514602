//! A small Internet for the overlay tests: a "public" segment
//! (`172.32.0.0/24`, a bridge in the public host's namespace, where the
//! public host is `172.32.0.10`) and, per site, a router namespace
//! (`172.32.0.1N` on the public side, `10.N.0.1` inside) doing NAT with
//! nftables for a host namespace behind it (`10.N.0.2`, its default route
//! through the router). Multicast is not routed: sites do not hear each
//! other over mDNS. No latency or loss (this kernel has no netem).
//! A router can also map ports on request ([`NatLab::map_ports`]: UPnP
//! IGD, NAT-PMP and PCP, by miniupnpd).
//!
//! The public segment is just past the private 172.16.0.0/12: a range that
//! is neither private nor reserved, as a router's outside address must be
//! for miniupnpd to map ports (it refuses the documentation ranges). It
//! exists only inside the lab's namespaces, which have no route out.
//! Everything is deleted, and whatever runs in it killed, on drop.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// The public host's address.
pub const PUBLIC_IP: &str = "172.32.0.10";
/// The public segment's first three octets.
const PUBLIC_NET: &str = "172.32.0";

/// How a site's router treats its host's traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nat {
    /// Linux masquerade: the source port kept when it is free (endpoint-
    /// independent mapping); replies only from where packets went.
    Masquerade,
    /// Masquerade with random ports for every new flow (`random-fully`):
    /// behaves like a symmetric NAT.
    RandomFully,
    /// Masquerade, and every UDP packet dropped: only TCP (HTTP) goes out.
    NoUdp,
    /// Masquerade keeping ports, and every UDP packet from the public side
    /// forwarded to the host (endpoint-independent filtering: full cone).
    FullCone,
}

impl Nat {
    /// The name the benchmark prints.
    pub fn name(self) -> &'static str {
        match self {
            Nat::Masquerade => "masquerade",
            Nat::RandomFully => "symmetric",
            Nat::NoUdp => "no-udp",
            Nat::FullCone => "full-cone",
        }
    }
}

/// One site: a router and the host behind it.
pub struct Site {
    /// The router's namespace.
    pub router_ns: String,
    /// The host's namespace.
    pub host_ns: String,
    /// The host's address.
    pub host_ip: String,
}

/// The lab.
pub struct NatLab {
    /// The public host's namespace.
    pub public_ns: String,
    /// The sites, in the order asked.
    pub sites: Vec<Site>,
    /// More hosts on the public segment (see [`NatLab::add_host`]).
    pub hosts: Vec<(String, String)>,
    tag: String,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("the NAT lab needs `{program}` (iproute2, nftables): {e}"));
    assert!(
        out.status.success(),
        "{program} {} failed: {} (the NAT lab needs root)",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

fn ip(args: &[&str]) {
    run("ip", args)
}

impl NatLab {
    /// Makes the public segment and one site per entry of `nats`.
    pub fn new(nats: &[Nat]) -> NatLab {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{}n{n}", std::process::id() % 10_000);
        let public_ns = format!("glow{tag}p");
        ip(&["netns", "add", &public_ns]);
        let mut lab = NatLab {
            public_ns: public_ns.clone(),
            sites: Vec::new(),
            hosts: Vec::new(),
            tag: tag.clone(),
        };
        let p = public_ns.as_str();
        ip(&["-n", p, "link", "set", "lo", "up"]);
        ip(&["-n", p, "link", "add", "br0", "type", "bridge"]);
        ip(&[
            "-n",
            p,
            "addr",
            "add",
            &format!("{PUBLIC_IP}/24"),
            "dev",
            "br0",
        ]);
        ip(&["-n", p, "link", "set", "br0", "up"]);
        // Multicast (mDNS) stays on the public segment.
        ip(&["-n", p, "route", "add", "224.0.0.0/4", "dev", "br0"]);
        for (i, nat) in nats.iter().enumerate() {
            let i = i + 1;
            let router_ns = format!("glow{tag}r{i}");
            let host_ns = format!("glow{tag}h{i}");
            ip(&["netns", "add", &router_ns]);
            ip(&["netns", "add", &host_ns]);
            // Record them at once: a failure below still cleans up.
            lab.sites.push(Site {
                router_ns: router_ns.clone(),
                host_ns: host_ns.clone(),
                host_ip: format!("10.{i}.0.2"),
            });
            let (r, h) = (router_ns.as_str(), host_ns.as_str());
            let (wan, port) = (format!("gw{tag}{i}"), format!("gb{tag}{i}"));
            let (lan, host_if) = (format!("gl{tag}{i}"), format!("gh{tag}{i}"));
            ip(&[
                "link", "add", &wan, "netns", r, "type", "veth", "peer", "name", &port, "netns", p,
            ]);
            ip(&["-n", p, "link", "set", &port, "master", "br0"]);
            ip(&["-n", p, "link", "set", &port, "up"]);
            ip(&[
                "link", "add", &lan, "netns", r, "type", "veth", "peer", "name", &host_if, "netns",
                h,
            ]);
            let wan_ip = format!("{PUBLIC_NET}.{}/24", 10 + i);
            ip(&["-n", r, "addr", "add", &wan_ip, "dev", &wan]);
            ip(&[
                "-n",
                r,
                "addr",
                "add",
                &format!("10.{i}.0.1/24"),
                "dev",
                &lan,
            ]);
            ip(&[
                "-n",
                h,
                "addr",
                "add",
                &format!("10.{i}.0.2/24"),
                "dev",
                &host_if,
            ]);
            for (ns, dev) in [(r, &wan), (r, &lan), (h, &host_if)] {
                ip(&["-n", ns, "link", "set", dev, "up"]);
            }
            ip(&["-n", r, "link", "set", "lo", "up"]);
            ip(&["-n", h, "link", "set", "lo", "up"]);
            ip(&[
                "-n",
                h,
                "route",
                "add",
                "default",
                "via",
                &format!("10.{i}.0.1"),
            ]);
            run(
                "ip",
                &["netns", "exec", r, "sysctl", "-qw", "net.ipv4.ip_forward=1"],
            );
            let masquerade = match nat {
                Nat::RandomFully => "masquerade fully-random",
                Nat::Masquerade | Nat::NoUdp | Nat::FullCone => "masquerade",
            };
            // As every home router does: nothing unsolicited from the
            // public side reaches the router itself. (Without it, a hole
            // punch that arrives before the host's own probe leaves is
            // delivered locally, its conntrack entry is kept, and the
            // host's probe then gets another port: no router does that.)
            let mut rules = format!(
                "table ip nat {{\n chain post {{\n  type nat hook postrouting priority 100;\n  \
                 oifname \"{wan}\" {masquerade}\n }}\n}}\n\
                 table inet guard {{\n chain input {{\n  type filter hook input priority 0;\n  \
                 iifname \"{wan}\" ct state new drop\n }}\n}}\n"
            );
            if *nat == Nat::FullCone {
                rules.push_str(&format!(
                    "table ip cone {{\n chain pre {{\n  type nat hook prerouting priority -100;\n  \
                     iifname \"{wan}\" meta l4proto udp dnat to 10.{i}.0.2\n }}\n}}\n"
                ));
            }
            if *nat == Nat::NoUdp {
                rules.push_str(
                    "table inet filter {\n chain block {\n  type filter hook forward priority 0;\n  \
                     meta l4proto udp drop\n }\n}\n",
                );
            }
            let file = std::env::temp_dir().join(format!("glow-nat-{tag}-{i}.nft"));
            std::fs::write(&file, rules).unwrap();
            run(
                "ip",
                &["netns", "exec", r, "nft", "-f", file.to_str().unwrap()],
            );
            let _ = std::fs::remove_file(&file);
        }
        lab
    }

    /// Runs `f` in namespace `ns`, on a runtime of its own, and returns
    /// what it returns (a panic in it fails the test).
    pub fn run_in<F, Fut, T>(&self, ns: &str, f: F) -> T
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = T>,
        T: Send + 'static,
    {
        use std::os::fd::AsFd;
        let path = format!("/run/netns/{ns}");
        let handle = std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).unwrap();
            rustix::thread::move_into_link_name_space(
                ns.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .expect("setns into the lab's namespace");
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(f())
        });
        match handle.join() {
            Ok(v) => v,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// Makes site `i`'s router map ports for its host on request, as a
    /// home router with UPnP on does: miniupnpd (UPnP IGD, NAT-PMP, PCP)
    /// on the inside, its forwards in nftables chains of their own that
    /// run before the site's masquerade. Its log goes to `log`.
    pub fn map_ports(&self, i: usize, log: &std::path::Path) {
        let site = &self.sites[i];
        let n = i + 1;
        let (wan, lan) = (format!("gw{}{n}", self.tag), format!("gl{}{n}", self.tag));
        // The table and chain names are miniupnpd's defaults.
        let rules = "table inet filter {
              chain forward {
  type filter hook forward priority 0; policy accept;
  jump miniupnpd
 }
              chain miniupnpd {
 }
              chain prerouting {
  type nat hook prerouting priority -100; policy accept;
  jump prerouting_miniupnpd
 }
              chain postrouting {
  type nat hook postrouting priority 99; policy accept;
  jump postrouting_miniupnpd
 }
              chain prerouting_miniupnpd {
 }
              chain postrouting_miniupnpd {
 }
}
";
        let file = std::env::temp_dir().join(format!("glow-upnp-{}-{n}.nft", self.tag));
        std::fs::write(&file, rules).unwrap();
        run(
            "ip",
            &[
                "netns",
                "exec",
                &site.router_ns,
                "nft",
                "-f",
                file.to_str().unwrap(),
            ],
        );
        let conf = std::env::temp_dir().join(format!("glow-upnp-{}-{n}.conf", self.tag));
        // A lease file of its own: another lab's mappings are not loaded.
        let leases = log.with_extension("leases");
        std::fs::write(
            &conf,
            [
                format!("ext_ifname={wan}"),
                format!("listening_ip={lan}"),
                "port=0".into(),
                "enable_natpmp=yes".into(),
                "enable_upnp=yes".into(),
                "secure_mode=yes".into(),
                "system_uptime=yes".into(),
                format!("lease_file={}", leases.display()),
                format!("allow 1024-65535 10.{n}.0.0/24 1024-65535"),
                "deny 0-65535 0.0.0.0/0 0-65535\n".into(),
            ]
            .join("\n"),
        )
        .unwrap();
        let out = std::fs::File::create(log).unwrap();
        let daemon = if std::path::Path::new("/usr/sbin/miniupnpd").exists() {
            "/usr/sbin/miniupnpd"
        } else {
            "miniupnpd"
        };
        // Runs until the lab's drop kills what runs in its namespaces.
        #[allow(clippy::zombie_processes)]
        Command::new("ip")
            .args(["netns", "exec", &site.router_ns, daemon, "-d", "-f"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("port mapping needs miniupnpd (miniupnpd-nftables): {e}"));
    }

    /// Adds a host on the public segment, beside the public host (one LAN
    /// on a bridge, multicast routed: mDNS works among them). Returns its
    /// namespace and address.
    pub fn add_host(&mut self) -> (String, String) {
        let k = self.hosts.len() + 1;
        let (tag, p) = (self.tag.clone(), self.public_ns.clone());
        let ns = format!("glow{tag}l{k}");
        ip(&["netns", "add", &ns]);
        let addr = format!("{PUBLIC_NET}.{}", 20 + k);
        self.hosts.push((ns.clone(), addr.clone()));
        let (dev, port) = (format!("ge{tag}{k}"), format!("gp{tag}{k}"));
        ip(&[
            "link", "add", &dev, "netns", &ns, "type", "veth", "peer", "name", &port, "netns", &p,
        ]);
        ip(&["-n", &p, "link", "set", &port, "master", "br0"]);
        ip(&["-n", &p, "link", "set", &port, "up"]);
        ip(&["-n", &ns, "addr", "add", &format!("{addr}/24"), "dev", &dev]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        ip(&["-n", &ns, "link", "set", &dev, "up"]);
        ip(&["-n", &ns, "route", "add", "224.0.0.0/4", "dev", &dev]);
        (ns, addr)
    }

    fn namespaces(&self) -> Vec<&String> {
        let mut all = vec![&self.public_ns];
        for (ns, _) in &self.hosts {
            all.push(ns);
        }
        for s in &self.sites {
            all.push(&s.host_ns);
            all.push(&s.router_ns);
        }
        all
    }
}

impl Drop for NatLab {
    fn drop(&mut self) {
        for ns in self.namespaces() {
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}
