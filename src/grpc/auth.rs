//! Bearer-token checks for the control plane.
//!
//! Mutating calls (ControlService) always need `authorization: Bearer <token>` with
//! the worker's control token. A worker without a token refuses them, unless the
//! operator explicitly chose insecure mode (trusted networks, laptops). Read-only
//! services are open unless `status_requires_token` is set, in which case they need
//! the same token.
//!
//! The comparison hashes both sides with SHA-256 and compares the digests in
//! constant time, so neither the content nor the length of the token leaks through
//! timing. Failures never echo what the client sent.

use ring::digest::{digest, SHA256};
use subtle::ConstantTimeEq;
use tonic::metadata::MetadataMap;
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// Name of the environment variable holding the token, used in messages.
pub const TOKEN_VARIABLE: &str = "DBMAZZ_CONTROL_TOKEN";
/// Name of the environment variable enabling insecure control, used in messages.
pub const INSECURE_VARIABLE: &str = "DBMAZZ_CONTROL_INSECURE";

/// What a guarded service accepts.
#[derive(Clone)]
pub struct TokenGuard {
    /// SHA-256 of the configured token.
    token_digest: Option<[u8; 32]>,
    /// Let calls through when no token is configured.
    open_without_token: bool,
    /// Let every call through (read-only services that are not protected).
    open: bool,
    /// For messages: "control" or "status".
    what: &'static str,
}

impl std::fmt::Debug for TokenGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenGuard")
            .field("token_configured", &self.token_digest.is_some())
            .field("open_without_token", &self.open_without_token)
            .field("open", &self.open)
            .field("what", &self.what)
            .finish()
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = digest(&SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl TokenGuard {
    /// Guard for mutating calls: the token when configured; without one, refuse
    /// unless `insecure`.
    pub fn control(token: Option<&str>, insecure: bool) -> Self {
        TokenGuard {
            token_digest: token.map(|t| sha256(t.as_bytes())),
            open_without_token: insecure,
            open: false,
            what: "control",
        }
    }

    /// Guard for read-only calls: open unless `requires_token`, then the same token.
    pub fn read_only(token: Option<&str>, requires_token: bool) -> Self {
        TokenGuard {
            token_digest: token.map(|t| sha256(t.as_bytes())),
            open_without_token: false,
            open: !requires_token,
            what: "status",
        }
    }

    /// Decides on the metadata of one gRPC call.
    pub fn check(&self, metadata: &MetadataMap) -> Result<(), Status> {
        self.check_header(metadata.get("authorization").map(|v| v.as_bytes()))
    }

    /// Decides on the raw value of an `authorization` header (gRPC metadata or
    /// HTTP), `None` when the header is absent.
    pub fn check_header(&self, value: Option<&[u8]>) -> Result<(), Status> {
        if self.open {
            return Ok(());
        }
        let Some(expected) = &self.token_digest else {
            if self.open_without_token {
                return Ok(());
            }
            return Err(Status::permission_denied(format!(
                "{} calls are disabled on this worker: no {TOKEN_VARIABLE} is configured. \
                 Set {TOKEN_VARIABLE} on the worker and send 'authorization: Bearer <token>', \
                 or set {INSECURE_VARIABLE}=1 on a trusted network",
                self.what
            )));
        };
        let Some(value) = value else {
            return Err(Status::unauthenticated(format!(
                "{} calls need the header 'authorization: Bearer <token>' with the worker's {TOKEN_VARIABLE}",
                self.what
            )));
        };
        let presented = std::str::from_utf8(value)
            .ok()
            .and_then(bearer_token)
            .ok_or_else(|| {
                Status::unauthenticated("malformed authorization header: expected 'Bearer <token>'")
            })?;
        if bool::from(sha256(presented.as_bytes()).ct_eq(expected)) {
            Ok(())
        } else {
            tracing::warn!(service = self.what, "rejected a call with a wrong token");
            Err(Status::unauthenticated(format!(
                "invalid token for {} calls",
                self.what
            )))
        }
    }
}

/// The token of an `authorization` value `Bearer <token>` (scheme case-insensitive,
/// RFC 7235), `None` for anything else.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim();
    (!token.is_empty()).then_some(token)
}

impl Interceptor for TokenGuard {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        self.check(request.metadata())?;
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    fn md(auth: Option<&str>) -> MetadataMap {
        let mut m = MetadataMap::new();
        if let Some(a) = auth {
            m.insert("authorization", a.parse().expect("ascii"));
        }
        m
    }

    #[test]
    fn control_needs_the_right_token() {
        let g = TokenGuard::control(Some("s3cret"), false);
        assert_eq!(
            g.check(&md(None)).map_err(|e| e.code()),
            Err(Code::Unauthenticated)
        );
        assert_eq!(
            g.check(&md(Some("Bearer nope"))).map_err(|e| e.code()),
            Err(Code::Unauthenticated)
        );
        assert_eq!(
            g.check(&md(Some("Basic s3cret"))).map_err(|e| e.code()),
            Err(Code::Unauthenticated)
        );
        assert_eq!(
            g.check(&md(Some("Bearer s3cret2"))).map_err(|e| e.code()),
            Err(Code::Unauthenticated)
        );
        assert!(g.check(&md(Some("Bearer s3cret"))).is_ok());
        assert!(g.check(&md(Some("bearer  s3cret "))).is_ok());
    }

    #[test]
    fn insecure_does_not_override_a_configured_token() {
        let g = TokenGuard::control(Some("t"), true);
        assert!(g.check(&md(None)).is_err());
        assert!(g.check(&md(Some("Bearer t"))).is_ok());
    }

    #[test]
    fn no_token_refuses_unless_insecure() {
        let g = TokenGuard::control(None, false);
        let e = g.check(&md(Some("Bearer anything"))).expect_err("refused");
        assert_eq!(e.code(), Code::PermissionDenied);
        assert!(e.message().contains(INSECURE_VARIABLE));
        assert!(TokenGuard::control(None, true).check(&md(None)).is_ok());
    }

    #[test]
    fn read_only_open_by_default() {
        assert!(TokenGuard::read_only(Some("t"), false)
            .check(&md(None))
            .is_ok());
        let g = TokenGuard::read_only(Some("t"), true);
        assert!(g.check(&md(None)).is_err());
        assert!(g.check(&md(Some("Bearer t"))).is_ok());
    }

    #[test]
    fn messages_never_echo_the_presented_token() {
        let g = TokenGuard::control(Some("right"), false);
        let e = g.check(&md(Some("Bearer wrong-XYZ"))).expect_err("wrong");
        assert!(!e.message().contains("XYZ"));
        assert!(!e.message().contains("right"));
    }
}
