//! SOAP for UPnP control: parsing an action call (quick-xml) and writing the
//! response envelope.
//!
//! Only what UPnP uses: an `Envelope` with a `Body` whose one child is the
//! action, whose children are the in-arguments as text. Namespace prefixes
//! are ignored (clients spell them differently); DOCTYPEs are refused, and
//! entities other than XML's five and character references are errors, so
//! nothing expands.

use super::error::UpnpError;
use quick_xml::events::Event;

/// The content type of every SOAP and description answer.
pub const CONTENT_TYPE_XML: &str = "text/xml; charset=\"utf-8\"";

/// One parsed action call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The action's name (`Browse`).
    pub action: String,
    /// The in-arguments, in order, unescaped.
    pub args: Vec<(String, String)>,
}

impl Call {
    /// The value of an argument.
    pub fn arg(&self, name: &str) -> Option<&str> {
        self.args
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of a required argument; 402 when it is missing.
    pub fn required(&self, name: &str) -> Result<&str, UpnpError> {
        self.arg(name).ok_or(UpnpError::InvalidArgs)
    }

    /// A required unsigned 32-bit argument; 402 when missing or not a number.
    pub fn required_u32(&self, name: &str) -> Result<u32, UpnpError> {
        self.required(name)?
            .trim()
            .parse()
            .map_err(|_| UpnpError::InvalidArgs)
    }
}

/// Parses a SOAP action call; garbage gives 401 (not an action call at all)
/// or 402 (arguments that are not text).
pub fn parse(body: &[u8]) -> Result<Call, UpnpError> {
    let text = std::str::from_utf8(body).map_err(|_| UpnpError::InvalidAction)?;
    let mut reader = quick_xml::Reader::from_str(text);
    let mut depth = 0usize;
    let mut path: Vec<String> = Vec::new();
    let mut action: Option<String> = None;
    let mut args = Vec::new();
    loop {
        let ev = reader.read_event().map_err(|_| UpnpError::InvalidAction)?;
        match ev {
            Event::Start(e) => {
                let name = e.local_name().into_inner().to_owned();
                depth += 1;
                if depth > crate::xml::MAX_DEPTH {
                    return Err(UpnpError::InvalidAction);
                }
                match depth {
                    1 if name != "Envelope" => return Err(UpnpError::InvalidAction),
                    2 if name != "Body" && path.len() == 1 => {
                        // A SOAP Header is allowed and ignored.
                    }
                    3 if path.get(1).is_some_and(|b| b == "Body") => {
                        if action.is_some() {
                            return Err(UpnpError::InvalidAction);
                        }
                        action = Some(name.clone());
                    }
                    4 if action.is_some() && path.get(1).is_some_and(|b| b == "Body") => {
                        let raw = reader
                            .read_text(e.name())
                            .map_err(|_| UpnpError::InvalidArgs)?;
                        let value = quick_xml::escape::unescape(&raw)
                            .map_err(|_| UpnpError::InvalidArgs)?;
                        args.push((name, value.into_owned()));
                        depth -= 1;
                        continue;
                    }
                    _ => {}
                }
                path.push(name);
            }
            Event::Empty(e) => {
                let name = e.local_name().into_inner().to_owned();
                let in_body = path.get(1).is_some_and(|b| b == "Body");
                match depth + 1 {
                    1 => return Err(UpnpError::InvalidAction),
                    3 if in_body => {
                        if action.is_some() {
                            return Err(UpnpError::InvalidAction);
                        }
                        action = Some(name);
                    }
                    4 if in_body && action.is_some() => args.push((name, String::new())),
                    _ => {}
                }
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                path.pop();
            }
            Event::DocType(_) => return Err(UpnpError::InvalidAction),
            Event::Text(t) if depth == 0 && !t.trim().is_empty() => {
                return Err(UpnpError::InvalidAction);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if depth != 0 {
        return Err(UpnpError::InvalidAction);
    }
    Ok(Call {
        action: action.ok_or(UpnpError::InvalidAction)?,
        args,
    })
}

/// Writes an action's response envelope; `out_args` are already escaped
/// XML text, in the order the service description gives them.
pub fn response(service_type: &str, action: &str, out_args: &[(&str, &str)]) -> String {
    let size: usize = out_args
        .iter()
        .map(|(n, v)| 2 * n.len() + v.len() + 5)
        .sum();
    let mut s = String::with_capacity(300 + size);
    s.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body><u:");
    s.push_str(action);
    s.push_str("Response xmlns:u=\"");
    s.push_str(service_type);
    s.push_str("\">");
    for (name, value) in out_args {
        s.push('<');
        s.push_str(name);
        s.push('>');
        s.push_str(value);
        s.push_str("</");
        s.push_str(name);
        s.push('>');
    }
    s.push_str("</u:");
    s.push_str(action);
    s.push_str("Response></s:Body></s:Envelope>\r\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{CASES, bytes, mutated, xmlish};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(CASES))]

        /// Any body is an action call or a UPnP fault (401/402).
        #[test]
        fn any_body_is_a_call_or_a_fault(body in prop_oneof![bytes(512), xmlish(), mutated(BROWSE.as_bytes())]) {
            match parse(&body) {
                Ok(call) => prop_assert!(!call.action.is_empty()),
                Err(e) => prop_assert!(matches!(e, UpnpError::InvalidAction | UpnpError::InvalidArgs)),
            }
        }
    }

    const BROWSE: &str = r#"<?xml version="1.0"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/">
  <s:Body>
    <u:Browse xmlns:u="urn:schemas-upnp-org:service:ContentDirectory:1">
      <ObjectID>d/alice/Tom &amp; Jerry</ObjectID>
      <BrowseFlag>BrowseDirectChildren</BrowseFlag>
      <Filter>*</Filter>
      <StartingIndex>0</StartingIndex>
      <RequestedCount>10</RequestedCount>
      <SortCriteria/>
    </u:Browse>
  </s:Body>
</s:Envelope>"#;

    #[test]
    fn parses_an_action() {
        let call = parse(BROWSE.as_bytes()).unwrap();
        assert_eq!(call.action, "Browse");
        assert_eq!(call.arg("ObjectID"), Some("d/alice/Tom & Jerry"));
        assert_eq!(call.arg("SortCriteria"), Some(""));
        assert_eq!(call.required_u32("RequestedCount"), Ok(10));
        assert_eq!(call.required_u32("Filter"), Err(UpnpError::InvalidArgs));
        assert_eq!(call.required("Nope"), Err(UpnpError::InvalidArgs));
        let empty =
            parse(b"<Envelope><Body><GetSortCapabilities xmlns=\"urn:x\"/></Body></Envelope>")
                .unwrap();
        assert_eq!(empty.action, "GetSortCapabilities");
        assert!(empty.args.is_empty());
        let with_header = parse(
            b"<e:Envelope xmlns:e=\"x\"><e:Header><a>1</a></e:Header><e:Body><A><x>&#65;&lt;</x></A></e:Body></e:Envelope>",
        )
        .unwrap();
        assert_eq!(with_header.arg("x"), Some("A<"));
    }

    #[test]
    fn refuses_garbage() {
        for bad in [
            &b""[..],
            b"hello",
            b"<Envelope>",
            b"<Envelope><Body></Body></Envelope>",
            b"<NotSoap><Body><Browse/></Body></NotSoap>",
            b"<Envelope><Body><A/><B/></Body></Envelope>",
            b"<!DOCTYPE x [<!ENTITY a \"b\">]><Envelope><Body><A><x>&a;</x></A></Body></Envelope>",
            b"<Envelope><Body><A><x>1</y></A></Body></Envelope>",
            b"\xff\xfe<Envelope/>",
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(
            parse(b"<Envelope><Body><A><x>&bogus;</x></A></Body></Envelope>"),
            Err(UpnpError::InvalidArgs)
        );
    }

    #[test]
    fn writes_a_response_and_escapes() {
        let r = response("urn:x:1", "GetSystemUpdateID", &[("Id", "7")]);
        assert!(r.contains("<u:GetSystemUpdateIDResponse xmlns:u=\"urn:x:1\"><Id>7</Id></u:GetSystemUpdateIDResponse>"));
    }
}
