//! Stand-ins for the identity providers a real Vault checks login tokens with, so the Vault
//! side of JWT and Kubernetes logins runs for real (OpenBao verifies signatures, audiences,
//! expiry and bound claims) without an outside identity provider:
//!
//! - [`SigningKey`]: an ES256 key the test generates; OpenBao's JWT auth mount trusts its public
//!   key (`jwt_validation_pubkeys`), and the test signs JWTs with it;
//! - [`KubernetesApi`]: the Kubernetes TokenReview API, which OpenBao's Kubernetes auth asks
//!   whether a service-account token is genuine (it answers for tokens it signed);
//! - [`GitHubOidc`]: GitHub Actions' OIDC token service (`ACTIONS_ID_TOKEN_REQUEST_URL`), which
//!   hands a workflow a JWT for the audience it asks for. github.com is out of reach here, and
//!   this is the only way to give secretsync's Actions login a token service to call.
//!
//! secretsync never talks to the Kubernetes stand-in, and to the GitHub one only as a workflow
//! would; what it is tested against is OpenBao.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _, UnparsedPublicKey,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::http::{Request, Response};

/// A CA certificate no connection uses: OpenBao's Kubernetes auth insists on one, and the
/// stand-in serves plain HTTP on loopback.
pub const UNUSED_CA_PEM: &str = include_str!("fixtures/unused-ca.pem");

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// An ES256 (ECDSA P-256) key pair that signs JWTs.
#[derive(Debug)]
pub struct SigningKey {
    pair: EcdsaKeyPair,
}

impl SigningKey {
    /// A new random key.
    pub fn generate() -> Self {
        Self {
            pair: EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("an ECDSA P-256 key"),
        }
    }

    /// The public key as PEM (SubjectPublicKeyInfo), for `jwt_validation_pubkeys`.
    pub fn public_pem(&self) -> String {
        // SubjectPublicKeyInfo for id-ecPublicKey on prime256v1, followed by the 65-byte point.
        const SPKI_PREFIX: [u8; 26] = [
            0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
            0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
        ];
        let mut der = SPKI_PREFIX.to_vec();
        der.extend_from_slice(self.pair.public_key().as_ref());
        let body = STANDARD.encode(der);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }

    /// A compact JWS (`header.claims.signature`) over `claims`.
    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({ "alg": "ES256", "typ": "JWT" });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .pair
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .expect("signing");
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }

    /// The claims of `jwt` if this key signed it.
    pub fn verify(&self, jwt: &str) -> Option<Value> {
        let (signing_input, signature) = jwt.rsplit_once('.')?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.pair.public_key().as_ref())
            .verify(signing_input.as_bytes(), &signature)
            .ok()?;
        let claims = signing_input.split('.').nth(1)?;
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).ok()?).ok()
    }
}

/// The Kubernetes TokenReview API (`POST /apis/authentication.k8s.io/v1/tokenreviews`) on
/// loopback: a token it signed is a genuine service-account token of the account its claims
/// name; anything else is not authenticated.
#[derive(Debug)]
pub struct KubernetesApi {
    /// `http://127.0.0.1:PORT`, for the auth mount's `kubernetes_host`.
    pub url: String,
    key: Arc<SigningKey>,
    reviews: Arc<AtomicU64>,
}

impl KubernetesApi {
    /// Starts it on a free loopback port, serving on the caller's runtime.
    pub async fn start() -> Self {
        let key = Arc::new(SigningKey::generate());
        let reviews = Arc::new(AtomicU64::new(0));
        let (signer, counter) = (Arc::clone(&key), Arc::clone(&reviews));
        let url = serve(move |request| {
            counter.fetch_add(1, Ordering::SeqCst);
            token_review(&signer, &request)
        })
        .await;
        Self { url, key, reviews }
    }

    /// A projected service-account token for `service_account` in `namespace`.
    pub fn service_account_token(&self, namespace: &str, service_account: &str) -> String {
        let issued = now();
        self.key.sign(&json!({
            "iss": "https://kubernetes.default.svc.cluster.local",
            "sub": format!("system:serviceaccount:{namespace}:{service_account}"),
            "aud": ["https://kubernetes.default.svc.cluster.local"],
            "iat": issued,
            "nbf": issued,
            "exp": issued + 3600,
            "kubernetes.io": {
                "namespace": namespace,
                "serviceaccount": { "name": service_account, "uid": format!("uid-{service_account}") },
            },
        }))
    }

    /// How many token reviews were asked.
    pub fn reviews(&self) -> u64 {
        self.reviews.load(Ordering::SeqCst)
    }
}

fn token_review(key: &SigningKey, request: &Request) -> Response {
    let body = request.json().unwrap_or_default();
    let token = body["spec"]["token"].as_str().unwrap_or_default();
    let status = match key.verify(token) {
        Some(claims) => {
            let account = &claims["kubernetes.io"];
            let (namespace, name, uid) = (
                account["namespace"].as_str().unwrap_or_default(),
                account["serviceaccount"]["name"].as_str().unwrap_or_default(),
                account["serviceaccount"]["uid"].as_str().unwrap_or_default(),
            );
            json!({
                "authenticated": true,
                "user": {
                    "username": format!("system:serviceaccount:{namespace}:{name}"),
                    "uid": uid,
                    "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{namespace}")],
                },
                "audiences": body["spec"]["audiences"].clone(),
            })
        }
        None => json!({ "authenticated": false, "error": "invalid bearer token" }),
    };
    Response::json(
        201,
        &json!({ "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "status": status }),
    )
}

/// GitHub Actions' OIDC token service on loopback: `GET /token?…&audience=A` with the request
/// token as bearer answers `{"value": JWT}`, the JWT signed by [`GitHubOidc::key`] with the
/// claims of a workflow run in `repository`.
#[derive(Debug)]
pub struct GitHubOidc {
    /// For `ACTIONS_ID_TOKEN_REQUEST_URL` (with GitHub's `api-version` query).
    pub request_url: String,
    /// For `ACTIONS_ID_TOKEN_REQUEST_TOKEN`.
    pub request_token: String,
    /// The key its tokens are signed with (trust its public key in Vault).
    pub key: Arc<SigningKey>,
    issued: Arc<AtomicU64>,
}

/// The issuer GitHub's tokens carry.
pub const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";

impl GitHubOidc {
    /// Starts it on a free loopback port; tokens name `repository` (`acme/platform`).
    pub async fn start(repository: &str) -> Self {
        let key = Arc::new(SigningKey::generate());
        let issued = Arc::new(AtomicU64::new(0));
        let request_token = format!("request-token-{}", crate::support::random_account_id());
        let (signer, counter, expected, repository) = (
            Arc::clone(&key),
            Arc::clone(&issued),
            format!("Bearer {request_token}"),
            repository.to_owned(),
        );
        let url = serve(move |request| {
            let authorised = request
                .header("authorization")
                .is_some_and(|h| h.eq_ignore_ascii_case(&expected));
            if request.path != "/token" || !authorised {
                return Response::json(401, &json!({ "message": "Bad credentials" }));
            }
            counter.fetch_add(1, Ordering::SeqCst);
            let owner = repository.split('/').next().unwrap_or_default();
            let audience = request
                .query("audience")
                .map_or_else(|| format!("https://github.com/{owner}"), str::to_owned);
            let issued = now();
            let jwt = signer.sign(&json!({
                "iss": GITHUB_ISSUER,
                "aud": audience,
                "sub": format!("repo:{repository}:ref:refs/heads/main"),
                "repository": repository,
                "repository_owner": owner,
                "ref": "refs/heads/main",
                "workflow": "sync",
                "iat": issued,
                "nbf": issued,
                "exp": issued + 300,
            }));
            Response::json(200, &json!({ "count": 1, "value": jwt }))
        })
        .await;
        Self {
            request_url: format!("{url}/token?api-version=2.0"),
            request_token,
            key,
            issued,
        }
    }

    /// How many tokens it handed out.
    pub fn issued(&self) -> u64 {
        self.issued.load(Ordering::SeqCst)
    }
}

/// Serves `handler` on a free loopback port on the caller's runtime; returns its base URL.
async fn serve(handler: impl Fn(Request) -> Response + Send + Sync + 'static) -> String {
    let loopback: SocketAddr = "127.0.0.1:0".parse().expect("loopback");
    let listener = crate::http::bind(loopback).await.expect("binding a loopback port");
    let url = format!("http://{}", listener.local_addr().expect("bound address"));
    let handler = Arc::new(move |request: Request| std::future::ready(handler(request)));
    #[expect(
        clippy::disallowed_methods,
        reason = "a test server runs beside the test until its runtime ends"
    )]
    tokio::spawn(crate::http::serve(listener, handler));
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_token_verifies_and_a_tampered_one_does_not() {
        let key = SigningKey::generate();
        let jwt = key.sign(&json!({ "sub": "x" }));
        assert_eq!(key.verify(&jwt).unwrap()["sub"], "x");
        let (head, _) = jwt.rsplit_once('.').unwrap();
        let forged = SigningKey::generate().sign(&json!({ "sub": "x" }));
        assert!(
            key.verify(&format!("{head}.{}", forged.rsplit_once('.').unwrap().1))
                .is_none()
        );
        assert!(
            key.public_pem()
                .starts_with("-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE")
        );
    }
}
