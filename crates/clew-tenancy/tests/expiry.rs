//! Tokens and sessions stop working when they expire, by the clock Tenancy is given: the test
//! moves a manual clock instead of waiting. On each metadata store.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use clew_tenancy::{
    AccessError, Credentials, LocalRateLimiter, ManualClock, Metadata, NewToken, Scope, Tenancy, TenancyOptions,
    TokenOwner,
};
use common::each_store;

const START: u64 = 1_800_000_000;

async fn tenancy(metadata: Metadata) -> (Tenancy, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::at(UNIX_EPOCH + Duration::from_secs(START)));
    let limiter = Arc::new(LocalRateLimiter::new(Duration::from_secs(10), clock.clone()));
    let options = TenancyOptions { auth_required: true, session_ttl: Duration::from_secs(3600), ..Default::default() };
    (Tenancy::new(metadata, options, clock.clone(), limiter).await.unwrap(), clock)
}

fn token(secret: &str) -> Credentials {
    Credentials { token: Some(secret.into()), ..Default::default() }
}

fn is_refused(outcome: Result<clew_tenancy::Caller, AccessError>) -> bool {
    matches!(outcome, Err(AccessError::Unauthenticated(_)))
}

#[tokio::test]
async fn a_token_works_until_its_expiry_and_not_from_then_on() {
    each_store(async |metadata| {
        let (tenancy, clock) = tenancy(metadata).await;
        let user = tenancy.create_user("alice", Some("a long password"), false).await.unwrap();
        let new = NewToken {
            owner: TokenOwner::User(user.id),
            name: "ci".into(),
            role: None,
            scopes: vec![Scope::Api],
            expires_at: Some(START as i64 + 60),
        };
        let (_, secret) = tenancy.create_token(&new).await.unwrap();
        assert!(tenancy.authenticate(&token(&secret)).await.is_ok(), "valid before its expiry");
        clock.advance(Duration::from_secs(59));
        assert!(tenancy.authenticate(&token(&secret)).await.is_ok(), "valid a second before");
        clock.advance(Duration::from_secs(1));
        assert!(is_refused(tenancy.authenticate(&token(&secret)).await), "refused at its expiry");
        let never = NewToken { expires_at: None, name: "forever".into(), ..new };
        let (_, forever) = tenancy.create_token(&never).await.unwrap();
        clock.advance(Duration::from_secs(10 * 365 * 86_400));
        assert!(tenancy.authenticate(&token(&forever)).await.is_ok(), "a token without expiry never expires");
    })
    .await;
}

#[tokio::test]
async fn a_session_lasts_the_configured_time() {
    each_store(async |metadata| {
        let (tenancy, clock) = tenancy(metadata).await;
        tenancy.create_user("bob", Some("a long password"), false).await.unwrap();
        let (_, session, _) = tenancy.sign_in("bob", "a long password").await.unwrap();
        let cookie = Credentials { session: Some(session), ..Default::default() };
        clock.advance(Duration::from_secs(3599));
        assert!(tenancy.authenticate(&cookie).await.is_ok(), "signed in within the session's time");
        clock.advance(Duration::from_secs(1));
        assert!(is_refused(tenancy.authenticate(&cookie).await), "signed out when it ends");
    })
    .await;
}
