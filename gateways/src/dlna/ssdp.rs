//! SSDP (UPnP Device Architecture 1.0 §1): how TVs find Glow. On every
//! IPv4 interface it serves on, Glow announces itself (`ssdp:alive` at
//! start and every 15 minutes, `ssdp:byebye` at shutdown) to the multicast
//! group 239.255.255.250:1900 and answers `M-SEARCH` requests for
//! `ssdp:all`, `upnp:rootdevice`, its UUID, its device type and each service
//! type, after the random delay the searcher's `MX` allows.
//!
//! Written with sockets (socket2 + tokio) and httparse for the messages:
//! the SSDP crates either only search (ssdp-client) or fix what a server
//! must choose per interface (cotton-ssdp's SERVER, MX handling and one
//! LOCATION), and the `LOCATION` must be per interface — a TV on one
//! network must be sent an address on that network, the classic reason a
//! multi-homed server is not seen. Searchers are answered only from the
//! subnets Glow serves (no reflection off-link), at most 64 answers pending.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;

/// The SSDP multicast group.
pub const GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 255, 250);
/// The SSDP port.
pub const PORT: u16 = 1900;
/// `CACHE-CONTROL: max-age` of announcements, in seconds.
const MAX_AGE: u64 = 1800;
/// How often announcements are repeated (under half of `MAX_AGE`).
const ALIVE_EVERY: Duration = Duration::from_secs(900);
/// How often the interface list is read again.
const RESCAN_EVERY: Duration = Duration::from_secs(60);
/// Most answers waiting for their delay at once.
const MAX_PENDING: usize = 64;

/// What SSDP announces.
#[derive(Debug, Clone)]
pub struct Config {
    /// The device's UUID (without `uuid:`).
    pub uuid: String,
    /// The address the DLNA HTTP listener is bound to: its port goes into
    /// `LOCATION`, and a specific IP limits SSDP to that interface.
    pub http: SocketAddr,
    /// The `SERVER` header.
    pub server: String,
    /// The service types beside the device type.
    pub services: Vec<String>,
    /// The device type.
    pub device_type: String,
}

/// One interface Glow serves on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interface {
    /// Its address.
    pub ip: Ipv4Addr,
    /// Its netmask.
    pub mask: Ipv4Addr,
}

impl Interface {
    /// Whether `peer` is on this interface's subnet.
    pub(crate) fn holds(&self, peer: Ipv4Addr) -> bool {
        let m = u32::from(self.mask);
        u32::from(self.ip) & m == u32::from(peer) & m
    }
}

/// The IPv4 interfaces to announce on: every one but loopback when the
/// listener is bound to all addresses, else only the bound one.
pub fn interfaces(bound: IpAddr) -> Vec<Interface> {
    let all = if_addrs::get_if_addrs().unwrap_or_default();
    let mut out: Vec<Interface> = all
        .into_iter()
        .filter_map(|i| match i.addr {
            if_addrs::IfAddr::V4(ref a) => Some((i.is_loopback(), a.clone())),
            _ => None,
        })
        .filter(|(lo, a)| {
            if bound.is_unspecified() {
                !lo
            } else {
                IpAddr::V4(a.ip) == bound
            }
        })
        .map(|(_, a)| Interface {
            ip: a.ip,
            mask: a.netmask,
        })
        .collect();
    out.sort_by_key(|i| i.ip);
    out.dedup();
    out
}

impl Config {
    /// Every (NT, USN) pair this device announces.
    pub fn targets(&self) -> Vec<(String, String)> {
        let u = &self.uuid;
        let mut t = vec![
            (
                "upnp:rootdevice".to_owned(),
                format!("uuid:{u}::upnp:rootdevice"),
            ),
            (format!("uuid:{u}"), format!("uuid:{u}")),
            (
                self.device_type.clone(),
                format!("uuid:{u}::{}", self.device_type),
            ),
        ];
        for s in &self.services {
            t.push((s.clone(), format!("uuid:{u}::{s}")));
        }
        t
    }

    /// The (ST, USN) pairs that answer a search target.
    pub fn answers(&self, st: &str) -> Vec<(String, String)> {
        let targets = self.targets();
        if st == "ssdp:all" {
            return targets;
        }
        if let Some(t) = targets.iter().find(|(nt, _)| nt == st) {
            return vec![t.clone()];
        }
        // `urn:…:type:v` matches a type Glow has in version v or later; the
        // answer echoes the version asked for (UDA 1.1 §1.3.2).
        if let Some((base, v)) = st.rsplit_once(':')
            && let Ok(v) = v.parse::<u32>()
        {
            for (nt, usn) in &targets {
                if let Some((b, have)) = nt.rsplit_once(':')
                    && b == base
                    && have.parse::<u32>().is_ok_and(|h| h >= v)
                    && nt.starts_with("urn:")
                {
                    let usn = format!("{}::{st}", usn.split("::").next().unwrap_or(usn));
                    return vec![(st.to_owned(), usn)];
                }
            }
        }
        Vec::new()
    }

    fn location(&self, ip: Ipv4Addr) -> String {
        format!("http://{ip}:{}/dlna/description.xml", self.http.port())
    }

    /// A `NOTIFY ssdp:alive` for one target on one interface.
    pub fn alive(&self, ip: Ipv4Addr, nt: &str, usn: &str) -> String {
        format!(
            "NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nCACHE-CONTROL: max-age={MAX_AGE}\r\nLOCATION: {}\r\nNT: {nt}\r\nNTS: ssdp:alive\r\nSERVER: {}\r\nUSN: {usn}\r\n\r\n",
            self.location(ip),
            self.server
        )
    }

    /// A `NOTIFY ssdp:byebye` for one target.
    pub fn byebye(&self, nt: &str, usn: &str) -> String {
        format!(
            "NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nNT: {nt}\r\nNTS: ssdp:byebye\r\nUSN: {usn}\r\n\r\n"
        )
    }

    /// The answer to a search, for one target, from one interface.
    pub fn response(&self, ip: Ipv4Addr, st: &str, usn: &str) -> String {
        format!(
            "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age={MAX_AGE}\r\nDATE: {}\r\nEXT:\r\nLOCATION: {}\r\nSERVER: {}\r\nST: {st}\r\nUSN: {usn}\r\nContent-Length: 0\r\n\r\n",
            httpdate::fmt_http_date(std::time::SystemTime::now()),
            self.location(ip),
            self.server
        )
    }
}

/// An `M-SEARCH` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    /// The search target.
    pub st: String,
    /// The most seconds the searcher lets an answer wait (`None` for a
    /// unicast search, which may leave it out).
    pub mx: Option<u64>,
}

/// Parses an SSDP datagram; `None` unless it is a well-formed discovery
/// request (`M-SEARCH * HTTP/1.1`, `MAN: "ssdp:discover"`, an `ST`).
pub fn parse_search(datagram: &[u8]) -> Option<Search> {
    let mut headers = [httparse::EMPTY_HEADER; 24];
    let mut req = httparse::Request::new(&mut headers);
    // A datagram without the final blank line is still a whole message.
    let status = match req.parse(datagram) {
        Ok(s) => s,
        Err(_) => return None,
    };
    let _ = status;
    if req.method? != "M-SEARCH" || req.path? != "*" {
        return None;
    }
    let get = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(str::trim)
    };
    if get("MAN")? != "\"ssdp:discover\"" {
        return None;
    }
    let st = get("ST")?.to_owned();
    if st.is_empty() || st.len() > 256 {
        return None;
    }
    let mx = match get("MX") {
        Some(v) => Some(v.parse::<u64>().ok()?),
        None => None,
    };
    Some(Search { st, mx })
}

fn listener(ifaces: &[Interface]) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    // Other UPnP servers on this host (minidlna, libupnp) share the port.
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    // Only the groups this socket joins, not every group of the host.
    let _ = s.set_multicast_all_v4(false);
    s.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT).into())?;
    for i in ifaces {
        join(&s, i.ip);
    }
    UdpSocket::from_std(s.into())
}

fn join(s: &socket2::Socket, ip: Ipv4Addr) {
    if let Err(e) = s.join_multicast_v4(&GROUP, &ip) {
        tracing::debug!(%ip, "SSDP cannot join 239.255.255.250 here: {e}");
    }
}

fn sender(ip: Ipv4Addr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_nonblocking(true)?;
    s.set_multicast_if_v4(&ip)?;
    s.set_multicast_ttl_v4(2)?;
    s.set_multicast_loop_v4(true)?;
    s.bind(&SocketAddrV4::new(ip, 0).into())?;
    UdpSocket::from_std(s.into())
}

struct Served {
    iface: Interface,
    socket: Arc<UdpSocket>,
}

fn random_below(n: u64) -> u64 {
    let mut b = [0u8; 8];
    if n == 0 || getrandom::fill(&mut b).is_err() {
        return 0;
    }
    u64::from_le_bytes(b) % n
}

/// SSDP with its port open, ready to run.
pub struct Ssdp {
    cfg: Config,
    ifaces: Vec<Interface>,
    listen: UdpSocket,
}

impl Ssdp {
    /// Opens the SSDP port and joins the group on every interface served,
    /// so that searches are heard from the moment this returns. Fails only
    /// if the port cannot be opened at all.
    pub fn bind(cfg: Config) -> std::io::Result<Ssdp> {
        let ifaces = interfaces(cfg.http.ip());
        let listen = listener(&ifaces)?;
        Ok(Ssdp {
            cfg,
            ifaces,
            listen,
        })
    }

    /// Announces, answers searches until `shutdown` completes, then says
    /// goodbye on every interface.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        run(self, shutdown).await
    }
}

async fn run(ssdp: Ssdp, shutdown: impl std::future::Future<Output = ()>) {
    let Ssdp {
        cfg,
        mut ifaces,
        listen,
    } = ssdp;
    let cfg = Arc::new(cfg);
    let mut served: Vec<Served> = Vec::new();
    add_new(&cfg, &mut served, &ifaces).await;
    let pending = Arc::new(tokio::sync::Semaphore::new(MAX_PENDING));
    let mut buf = vec![0u8; 2048];
    let mut rescan = tokio::time::interval(RESCAN_EVERY);
    rescan.tick().await;
    let mut alive = tokio::time::interval(ALIVE_EVERY);
    alive.tick().await;
    // UDP may lose an announcement: a second one shortly after the first.
    let repeat = tokio::time::sleep(Duration::from_secs(1));
    tokio::pin!(shutdown, repeat);
    let mut repeated = false;
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = &mut repeat, if !repeated => {
                repeated = true;
                announce(&cfg, &served).await;
            }
            _ = alive.tick() => announce(&cfg, &served).await,
            _ = rescan.tick() => {
                let now = interfaces(cfg.http.ip());
                if now != ifaces {
                    served.retain(|s| now.contains(&s.iface));
                    let fresh: Vec<Interface> = now.iter().filter(|i| !ifaces.contains(i)).copied().collect();
                    let sock = socket2::SockRef::from(&listen);
                    for i in &fresh {
                        join_ref(&sock, i.ip);
                    }
                    add_new(&cfg, &mut served, &fresh).await;
                    ifaces = now;
                }
            }
            got = listen.recv_from(&mut buf) => {
                let Ok((n, from)) = got else { continue };
                let Some(search) = parse_search(&buf[..n]) else { continue };
                let SocketAddr::V4(from) = from else { continue };
                let Some(s) = served.iter().find(|s| s.iface.holds(*from.ip())) else { continue };
                let answers = cfg.answers(&search.st);
                if answers.is_empty() {
                    continue;
                }
                let Ok(permit) = pending.clone().try_acquire_owned() else { continue };
                let (cfg, socket, ip) = (cfg.clone(), s.socket.clone(), s.iface.ip);
                let wait = search.mx.map_or(0, |mx| random_below(mx.clamp(1, 5) * 1000));
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                    for (st, usn) in answers {
                        let _ = socket.send_to(cfg.response(ip, &st, &usn).as_bytes(), from).await;
                    }
                    drop(permit);
                });
            }
        }
    }
    for _ in 0..2 {
        for s in &served {
            for (nt, usn) in cfg.targets() {
                let dest = SocketAddrV4::new(GROUP, PORT);
                let _ = s
                    .socket
                    .send_to(cfg.byebye(&nt, &usn).as_bytes(), dest)
                    .await;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn join_ref(s: &socket2::SockRef<'_>, ip: Ipv4Addr) {
    if let Err(e) = s.join_multicast_v4(&GROUP, &ip) {
        tracing::debug!(%ip, "SSDP cannot join 239.255.255.250 here: {e}");
    }
}

async fn add_new(cfg: &Config, served: &mut Vec<Served>, fresh: &[Interface]) {
    let mut new = Vec::new();
    for i in fresh {
        match sender(i.ip) {
            Ok(socket) => new.push(Served {
                iface: *i,
                socket: Arc::new(socket),
            }),
            Err(e) => tracing::warn!(ip = %i.ip, "SSDP cannot announce here: {e}"),
        }
    }
    announce(cfg, &new).await;
    served.extend(new);
}

async fn announce(cfg: &Config, served: &[Served]) {
    let dest = SocketAddrV4::new(GROUP, PORT);
    for s in served {
        for (nt, usn) in cfg.targets() {
            if let Err(e) = s
                .socket
                .send_to(cfg.alive(s.iface.ip, &nt, &usn).as_bytes(), dest)
                .await
            {
                tracing::debug!(ip = %s.iface.ip, "SSDP announcement not sent: {e}");
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{CASES, bytes, mutated};
    use proptest::prelude::*;

    const SEARCH: &[u8] = b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 2\r\nST: urn:schemas-upnp-org:device:MediaServer:1\r\n\r\n";

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(CASES))]

        /// A datagram is a search or ignored; what is taken is bounded.
        #[test]
        fn any_datagram_is_a_search_or_silence(d in prop_oneof![bytes(600), mutated(SEARCH)]) {
            if let Some(s) = parse_search(&d) {
                prop_assert!(!s.st.is_empty() && s.st.len() <= 256);
            }
        }
    }

    fn cfg() -> Config {
        Config {
            uuid: "u1".into(),
            http: "10.0.0.5:8200".parse().unwrap(),
            server: "Linux UPnP/1.0 Glow/0".into(),
            services: vec![
                "urn:schemas-upnp-org:service:ContentDirectory:1".into(),
                "urn:schemas-upnp-org:service:ConnectionManager:1".into(),
            ],
            device_type: "urn:schemas-upnp-org:device:MediaServer:1".into(),
        }
    }

    #[test]
    fn parses_searches() {
        let ok = b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 3\r\nST: ssdp:all\r\n\r\n";
        assert_eq!(
            parse_search(ok),
            Some(Search {
                st: "ssdp:all".into(),
                mx: Some(3)
            })
        );
        let lower = b"m-search * HTTP/1.1\r\nman: \"ssdp:discover\"\r\nst: upnp:rootdevice\r\n\r\n";
        assert_eq!(parse_search(lower), None, "the method is case-sensitive");
        let unicast =
            b"M-SEARCH * HTTP/1.1\r\nman: \"ssdp:discover\"\r\nst: upnp:rootdevice\r\n\r\n";
        assert_eq!(parse_search(unicast).unwrap().mx, None);
        for bad in [
            &b""[..],
            b"garbage",
            b"\x00\x01\x02\xff",
            b"NOTIFY * HTTP/1.1\r\nNT: x\r\n\r\n",
            b"M-SEARCH * HTTP/1.1\r\nMAN: ssdp:discover\r\nST: ssdp:all\r\n\r\n",
            b"M-SEARCH * HTTP/1.1\r\nMAN: \"ssdp:discover\"\r\nMX: 3\r\n\r\n",
            b"M-SEARCH * HTTP/1.1\r\nMAN: \"ssdp:discover\"\r\nMX: soon\r\nST: ssdp:all\r\n\r\n",
            b"M-SEARCH /x HTTP/1.1\r\nMAN: \"ssdp:discover\"\r\nST: ssdp:all\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(parse_search(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn answers_targets() {
        let c = cfg();
        assert_eq!(c.answers("ssdp:all").len(), 5);
        assert_eq!(
            c.answers("upnp:rootdevice"),
            vec![("upnp:rootdevice".into(), "uuid:u1::upnp:rootdevice".into())]
        );
        assert_eq!(c.answers("uuid:u1").len(), 1);
        assert_eq!(c.answers("uuid:u2").len(), 0);
        assert_eq!(
            c.answers("urn:schemas-upnp-org:device:MediaServer:1"),
            vec![(
                "urn:schemas-upnp-org:device:MediaServer:1".into(),
                "uuid:u1::urn:schemas-upnp-org:device:MediaServer:1".into()
            )]
        );
        assert!(
            c.answers("urn:schemas-upnp-org:device:MediaServer:2")
                .is_empty()
        );
        assert!(
            c.answers("urn:schemas-upnp-org:device:MediaRenderer:1")
                .is_empty()
        );
        assert_eq!(
            c.answers("urn:schemas-upnp-org:service:ContentDirectory:1")
                .len(),
            1
        );
    }

    #[test]
    fn messages() {
        let c = cfg();
        let ip = Ipv4Addr::new(10, 0, 0, 5);
        let a = c.alive(ip, "upnp:rootdevice", "uuid:u1::upnp:rootdevice");
        assert!(a.starts_with("NOTIFY * HTTP/1.1\r\n"));
        assert!(a.contains("LOCATION: http://10.0.0.5:8200/dlna/description.xml\r\n"));
        assert!(a.contains("NTS: ssdp:alive\r\n"));
        assert!(a.ends_with("\r\n\r\n"));
        let r = c.response(ip, "ssdp:all", "uuid:u1");
        assert!(
            r.starts_with("HTTP/1.1 200 OK\r\n")
                && r.contains("\r\nEXT:\r\n")
                && r.contains("ST: ssdp:all")
        );
        assert!(c.byebye("x", "y").contains("NTS: ssdp:byebye"));
        let i = Interface {
            ip,
            mask: Ipv4Addr::new(255, 255, 255, 0),
        };
        assert!(i.holds(Ipv4Addr::new(10, 0, 0, 77)));
        assert!(!i.holds(Ipv4Addr::new(10, 0, 1, 77)));
    }
}
