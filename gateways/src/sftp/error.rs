//! Fabric errors as SFTP v3 status codes, with a message for the person
//! reading the client's output.

use fabric::FabricError;
use russh_sftp::protocol::StatusCode;

/// A failed request: the status code and the message sent with it.
#[derive(Debug)]
pub(super) struct Failure {
    pub code: StatusCode,
    pub message: String,
}

impl Failure {
    pub fn new(code: StatusCode, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }

    pub fn eof() -> Failure {
        Failure::new(StatusCode::Eof, "end of file")
    }

    pub fn no_such_file() -> Failure {
        Failure::new(StatusCode::NoSuchFile, "no such file or directory")
    }

    pub fn denied(why: &str) -> Failure {
        Failure::new(StatusCode::PermissionDenied, why)
    }

    pub fn failed(why: impl Into<String>) -> Failure {
        Failure::new(StatusCode::Failure, why)
    }

    pub fn bad_message(why: &str) -> Failure {
        Failure::new(StatusCode::BadMessage, why)
    }
}

impl From<FabricError> for Failure {
    fn from(e: FabricError) -> Failure {
        use FabricError as E;
        match e {
            E::NotFound | E::ParentMissing => Failure::no_such_file(),
            E::Forbidden | E::RateLimited(_) | E::BadCredentials => {
                Failure::denied("permission denied")
            }
            E::AlreadyExists => Failure::failed("already exists"),
            E::PreconditionFailed => Failure::failed("the file changed meanwhile"),
            E::NotEmpty => Failure::failed("directory not empty"),
            E::WrongKind(why) => Failure::failed(why),
            E::InvalidPath(why) | E::Invalid(why) => Failure::failed(why),
            E::Gone(why) => Failure::no_such_file().with(why),
            E::Io(io) if io.kind() == std::io::ErrorKind::NotFound => Failure::no_such_file(),
            E::Io(io) if io.kind() == std::io::ErrorKind::PermissionDenied => {
                Failure::denied("permission denied on the server's disk")
            }
            E::NoSpace => Failure::failed("no space left on the server"),
            // Internal failures are logged here and never described to the
            // client (paths, SQL and errno text are the server's business).
            other => {
                tracing::warn!("sftp request failed: {other}");
                Failure::failed("internal error on the server; see its log")
            }
        }
    }
}

impl Failure {
    fn with(mut self, message: &str) -> Failure {
        self.message = message.to_owned();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_are_not_described_to_clients() {
        let io = FabricError::Io(std::io::Error::other(
            "/srv/data/catalog.db: disk I/O error",
        ));
        let f = Failure::from(io);
        assert_eq!(f.code, StatusCode::Failure);
        assert!(
            !f.message.contains("catalog") && !f.message.contains("/srv"),
            "{}",
            f.message
        );
        let f = Failure::from(FabricError::NoSpace);
        assert!(f.message.contains("space"));
        let f = Failure::from(FabricError::Invalid(
            "a file may grow at most 64 MiB".into(),
        ));
        assert!(
            f.message.contains("64 MiB"),
            "what the client can act on is said"
        );
    }
}
