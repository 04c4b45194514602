//! X_MS_MediaReceiverRegistrar:1, which the Xbox and some Samsung TVs ask
//! before they browse: every device is authorized and validated (DLNA has
//! no sign-in; only media folders are visible).

use super::error::UpnpError;
use super::soap::{self, Call};
use crate::xml::escape;

/// The service type.
pub const SERVICE: &str = "urn:microsoft.com:service:X_MS_MediaReceiverRegistrar:1";

/// Answers one registrar action.
pub fn control(call: &Call) -> Result<String, UpnpError> {
    let out = |args: &[(&str, &str)]| Ok(soap::response(SERVICE, &call.action, args));
    match call.action.as_str() {
        "IsAuthorized" | "IsValidated" => {
            call.required("DeviceID")?;
            out(&[("Result", "1")])
        }
        "RegisterDevice" => {
            let msg = call.required("RegistrationReqMsg")?;
            out(&[("RegistrationRespMsg", &escape(msg))])
        }
        _ => Err(UpnpError::InvalidAction),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        let call = |a: &str, args: &[(&str, &str)]| Call {
            action: a.into(),
            args: args
                .iter()
                .map(|(x, y)| (x.to_string(), y.to_string()))
                .collect(),
        };
        assert!(
            control(&call("IsAuthorized", &[("DeviceID", "")]))
                .unwrap()
                .contains("<Result>1</Result>")
        );
        assert!(
            control(&call("IsValidated", &[("DeviceID", "x")]))
                .unwrap()
                .contains("<Result>1</Result>")
        );
        assert_eq!(
            control(&call("IsAuthorized", &[])),
            Err(UpnpError::InvalidArgs)
        );
        assert_eq!(control(&call("Other", &[])), Err(UpnpError::InvalidAction));
    }
}
