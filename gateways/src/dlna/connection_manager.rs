//! ConnectionManager:1 for a media server that streams over HTTP GET: one
//! implicit connection, id 0 (UPnP AV ConnectionManager:1 §2.4; what
//! minidlna answers, with the specified 706 for unknown ids).

use super::error::UpnpError;
use super::profiles::SOURCE_PROTOCOLS;
use super::soap::{self, Call};

/// The service type.
pub const SERVICE: &str = "urn:schemas-upnp-org:service:ConnectionManager:1";

/// Every protocolInfo Glow serves, comma-separated.
pub fn source_protocol_info() -> String {
    SOURCE_PROTOCOLS.join(",")
}

/// Answers one ConnectionManager action.
pub fn control(call: &Call) -> Result<String, UpnpError> {
    let out = |args: &[(&str, &str)]| Ok(soap::response(SERVICE, &call.action, args));
    match call.action.as_str() {
        "GetProtocolInfo" => out(&[("Source", &source_protocol_info()), ("Sink", "")]),
        "GetCurrentConnectionIDs" => out(&[("ConnectionIDs", "0")]),
        "GetCurrentConnectionInfo" => {
            let id: i32 = call
                .required("ConnectionID")?
                .trim()
                .parse()
                .map_err(|_| UpnpError::InvalidArgs)?;
            if id != 0 {
                return Err(UpnpError::InvalidConnection);
            }
            out(&[
                ("RcsID", "-1"),
                ("AVTransportID", "-1"),
                ("ProtocolInfo", ""),
                ("PeerConnectionManager", ""),
                ("PeerConnectionID", "-1"),
                ("Direction", "Output"),
                ("Status", "OK"),
            ])
        }
        _ => Err(UpnpError::InvalidAction),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(action: &str, args: &[(&str, &str)]) -> Call {
        Call {
            action: action.into(),
            args: args
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        }
    }

    #[test]
    fn answers() {
        let r = control(&call("GetCurrentConnectionIDs", &[])).unwrap();
        assert!(r.contains("<ConnectionIDs>0</ConnectionIDs>"));
        let r = control(&call("GetCurrentConnectionInfo", &[("ConnectionID", "0")])).unwrap();
        assert!(r.contains("<Direction>Output</Direction><Status>OK</Status>"));
        assert_eq!(
            control(&call("GetCurrentConnectionInfo", &[("ConnectionID", "3")])),
            Err(UpnpError::InvalidConnection)
        );
        assert_eq!(
            control(&call("GetCurrentConnectionInfo", &[("ConnectionID", "x")])),
            Err(UpnpError::InvalidArgs)
        );
        assert_eq!(control(&call("Nope", &[])), Err(UpnpError::InvalidAction));
        let r = control(&call("GetProtocolInfo", &[])).unwrap();
        assert!(r.contains("http-get:*:audio/mpeg:DLNA.ORG_PN=MP3,"));
    }
}
