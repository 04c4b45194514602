//! UPnP errors: the one mapping from fabric results to SOAP faults
//! (UPnP Device Architecture 1.0 §3.2.2, ContentDirectory:1 §2.4.16).
//!
//! A fault is an HTTP 500 with a `UPnPError` detail carrying the code; the
//! description is fixed per code, so internal details never reach the
//! client (they are logged here).

use super::soap::CONTENT_TYPE_XML;
use crate::xml::escape_into;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use fabric::FabricError;

/// A UPnP action's failure, as the SOAP fault it becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpnpError {
    /// 401: no such action, or the body is not a SOAP action call.
    InvalidAction,
    /// 402: missing, extra or malformed arguments.
    InvalidArgs,
    /// 501: the action failed for a reason of the server's own.
    ActionFailed,
    /// 701: no object with that id.
    NoSuchObject,
    /// 706: no connection with that id (ConnectionManager).
    InvalidConnection,
    /// 708: the search criteria cannot be parsed or use an unknown property.
    BadSearchCriteria,
    /// 709: the sort criteria cannot be parsed or use an unknown property.
    BadSortCriteria,
    /// 710: the object searched in is not a container.
    NoSuchContainer,
}

impl UpnpError {
    /// The error code.
    pub fn code(self) -> u16 {
        match self {
            UpnpError::InvalidAction => 401,
            UpnpError::InvalidArgs => 402,
            UpnpError::ActionFailed => 501,
            UpnpError::NoSuchObject => 701,
            UpnpError::InvalidConnection => 706,
            UpnpError::BadSearchCriteria => 708,
            UpnpError::BadSortCriteria => 709,
            UpnpError::NoSuchContainer => 710,
        }
    }

    /// The description the specifications give the code.
    pub fn description(self) -> &'static str {
        match self {
            UpnpError::InvalidAction => "Invalid Action",
            UpnpError::InvalidArgs => "Invalid Args",
            UpnpError::ActionFailed => "Action Failed",
            UpnpError::NoSuchObject => "No such object",
            UpnpError::InvalidConnection => "Invalid connection reference",
            UpnpError::BadSearchCriteria => "Unsupported or invalid search criteria",
            UpnpError::BadSortCriteria => "Unsupported or invalid sort criteria",
            UpnpError::NoSuchContainer => "No such container",
        }
    }

    /// The SOAP fault envelope.
    pub fn fault_xml(self) -> String {
        let mut s = String::with_capacity(512);
        s.push_str(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail><UPnPError xmlns=\"urn:schemas-upnp-org:control-1-0\"><errorCode>",
        );
        s.push_str(&self.code().to_string());
        s.push_str("</errorCode><errorDescription>");
        escape_into(&mut s, self.description());
        s.push_str("</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>\r\n");
        s
    }
}

impl From<FabricError> for UpnpError {
    fn from(e: FabricError) -> Self {
        match e {
            FabricError::NotFound | FabricError::InvalidPath(_) | FabricError::Forbidden => {
                UpnpError::NoSuchObject
            }
            FabricError::WrongKind(_) => UpnpError::NoSuchContainer,
            FabricError::Invalid(_) => UpnpError::InvalidArgs,
            e => {
                tracing::error!("DLNA action failed: {e}");
                UpnpError::ActionFailed
            }
        }
    }
}

impl IntoResponse for UpnpError {
    fn into_response(self) -> Response {
        let mut r = (StatusCode::INTERNAL_SERVER_ERROR, self.fault_xml()).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(CONTENT_TYPE_XML),
        );
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_carry_code_and_description() {
        let xml = UpnpError::NoSuchObject.fault_xml();
        assert!(xml.contains("<errorCode>701</errorCode>"));
        assert!(xml.contains("<errorDescription>No such object</errorDescription>"));
        assert_eq!(
            UpnpError::from(FabricError::NotFound),
            UpnpError::NoSuchObject
        );
        assert_eq!(
            UpnpError::from(FabricError::Io(std::io::Error::other("disk on fire"))),
            UpnpError::ActionFailed
        );
    }
}
