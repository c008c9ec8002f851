//! The metadata store's queries, on SQLite and (with `CLEW_TEST_POSTGRES_URL`) PostgreSQL.

#![allow(clippy::unwrap_used)]

mod common;

use clew_tenancy::{Limits, MemberOf, MetadataError, NewToken, RefusedCount, Role, Scope, TokenOwner};
use common::each_store;

#[tokio::test]
async fn namespaces_projects_members_and_roles() {
    each_store(async |store| {
        let alice = store.create_user("alice", Some("hash"), false, 1).await.unwrap();
        let bob = store.create_user("bob", None, true, 1).await.unwrap();
        assert_eq!((alice.id, bob.id), (1, 2));
        assert!(matches!(store.create_user("alice", None, false, 1).await, Err(MetadataError::Conflict(_))));
        let (found, hash) = store.user_by_name("alice").await.unwrap().unwrap();
        assert_eq!((found, hash.as_deref()), (alice.clone(), Some("hash")));
        assert!(store.set_password(bob.id, "new").await.unwrap());
        assert_eq!(store.user_by_name("bob").await.unwrap().unwrap().1.as_deref(), Some("new"));
        assert_eq!(store.user(bob.id).await.unwrap(), Some(bob.clone()));
        assert_eq!((store.users().await.unwrap().len(), store.user_count().await.unwrap()), (2, 2));

        let ns = store.create_namespace("team-a", "Team A", Limits::default(), 2).await.unwrap();
        assert_eq!(store.namespace("team-a").await.unwrap().unwrap(), ns);
        assert_eq!(store.namespace(&ns.id.to_string()).await.unwrap().unwrap(), ns);
        assert!(store.namespace("nope").await.unwrap().is_none());
        assert_eq!(store.namespaces().await.unwrap(), vec![ns.clone()]);
        let web = store.create_project(ns.id, "web", None, false, 3).await.unwrap();
        let default = store.create_project(ns.id, "default", Some("default"), true, 3).await.unwrap();
        assert_eq!((web.tenant.as_str(), default.tenant.as_str()), ("p1", "default"));
        assert_eq!(store.project_in(ns.id, "web").await.unwrap().unwrap(), web);
        assert_eq!(store.project_in(ns.id, &web.id.to_string()).await.unwrap().unwrap(), web);
        assert_eq!(store.projects(Some(ns.id)).await.unwrap(), vec![web.clone(), default.clone()]);
        assert_eq!(store.projects(None).await.unwrap().len(), 2);
        assert!(store.projects(Some(ns.id + 1)).await.unwrap().is_empty());
        assert!(store.set_pipeline(web.id, Some("{}")).await.unwrap());
        assert_eq!(store.project(web.id).await.unwrap().unwrap().pipeline.as_deref(), Some("{}"));
        assert!(store.set_pipeline(web.id, None).await.unwrap());
        let again = store.create_project(ns.id, "web", None, false, 3).await;
        assert!(matches!(again, Err(MetadataError::Conflict(_))), "{again:?}");
        let again = store.create_namespace("team-a", "A", Limits::default(), 3).await;
        assert!(matches!(again, Err(MetadataError::Conflict(_))), "{again:?}");

        assert_eq!(store.project_role(alice.id, &web).await.unwrap(), None);
        store.set_member(MemberOf::Namespace(ns.id), alice.id, Role::Reporter).await.unwrap();
        assert_eq!(store.project_role(alice.id, &web).await.unwrap(), Some(Role::Reporter));
        store.set_member(MemberOf::Project(web.id), alice.id, Role::Maintainer).await.unwrap();
        assert_eq!(store.project_role(alice.id, &web).await.unwrap(), Some(Role::Maintainer));
        assert_eq!(store.project_role(alice.id, &default).await.unwrap(), Some(Role::Reporter));
        store.set_member(MemberOf::Project(web.id), alice.id, Role::Guest).await.unwrap();
        assert_eq!(store.project_role(alice.id, &web).await.unwrap(), Some(Role::Reporter));
        assert_eq!(store.members(MemberOf::Project(web.id)).await.unwrap()[0].role, Role::Guest);
        assert!(store.remove_member(MemberOf::Project(web.id), alice.id).await.unwrap());
        assert_eq!(store.namespace_role(alice.id, ns.id).await.unwrap(), Some(Role::Reporter));

        assert!(store.set_tracing(web.id, true).await.unwrap());
        assert!(store.project(web.id).await.unwrap().unwrap().tracing_enabled);
        let limits =
            Limits { ingest_bytes_per_second: Some(1000), retention_days: 7, storage_quota_bytes: Some(1 << 30) };
        store.set_limits(ns.id, limits).await.unwrap();
        assert_eq!(store.namespace("team-a").await.unwrap().unwrap().limits, limits);

        assert!(store.delete_user(alice.id).await.unwrap());
        assert!(store.members(MemberOf::Namespace(ns.id)).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn tokens_sessions_and_usage() {
    each_store(async |store| {
        let user = store.create_user("carol", None, false, 1).await.unwrap();
        let new = NewToken {
            owner: TokenOwner::User(user.id),
            name: "ci".into(),
            role: None,
            scopes: vec![Scope::ReadApi, Scope::WriteObservability],
            expires_at: Some(100),
        };
        let token = store.create_token(&new, "digest-1", 5).await.unwrap();
        assert_eq!(token.scopes, new.scopes);
        assert!(token.is_active(99) && !token.is_active(100));
        assert_eq!(store.token_by_digest("digest-1").await.unwrap().unwrap(), token);
        assert!(matches!(store.create_token(&new, "digest-1", 5).await, Err(MetadataError::Conflict(_))));
        assert!(!store.revoke_token(TokenOwner::Project(1), token.id, 6).await.unwrap());
        assert!(store.revoke_token(TokenOwner::User(user.id), token.id, 6).await.unwrap());
        assert!(!store.token_by_digest("digest-1").await.unwrap().unwrap().is_active(7));
        store.touch_token(token.id, 8).await.unwrap();
        assert_eq!(store.tokens(TokenOwner::User(user.id)).await.unwrap()[0].last_used_at, Some(8));

        store.create_session("s1", user.id, "csrf", 50, 1).await.unwrap();
        assert_eq!(store.session("s1", 49).await.unwrap().unwrap().1, "csrf");
        assert!(store.session("s1", 50).await.unwrap().is_none());
        assert_eq!(store.delete_expired_sessions(60).await.unwrap(), 1);
        store.create_session("s2", user.id, "csrf", 50, 1).await.unwrap();
        store.delete_session("s2").await.unwrap();
        assert!(store.session("s2", 2).await.unwrap().is_none());

        let ns = store.create_namespace("n", "n", Limits::default(), 1).await.unwrap();
        let project = store.create_project(ns.id, "p", None, true, 1).await.unwrap();
        let new = NewToken { owner: TokenOwner::Project(project.id), role: Some(Role::Developer), ..new };
        let token = store.create_token(&new, "digest-2", 5).await.unwrap();
        assert_eq!(store.tokens(TokenOwner::Project(project.id)).await.unwrap(), vec![token]);
        store.add_usage(ns.id, 10, 100, 2).await.unwrap();
        store.add_usage(ns.id, 10, 50, 1).await.unwrap();
        store.add_refusals(ns.id, 11, "rate_limited", 1, 70).await.unwrap();
        store.add_refusals(ns.id, 11, "rate_limited", 2, 30).await.unwrap();
        let usage = store.usage(ns.id, 0).await.unwrap();
        assert_eq!(usage.len(), 2);
        assert_eq!((usage[0].day, usage[0].ingested_bytes, usage[0].ingested_spans), (10, 150, 3));
        assert_eq!(usage[1].refused["rate_limited"], RefusedCount { requests: 3, bytes: 100 });
        assert_eq!(store.usage(ns.id, 11).await.unwrap().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn concurrent_inserts_get_distinct_ids() {
    each_store(async |store| {
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..20 {
            let store = store.clone();
            tasks.spawn(async move { store.create_user(&format!("user-{n}"), None, false, 1).await.unwrap().id });
        }
        let mut ids = tasks.join_all().await;
        ids.sort();
        assert_eq!(ids, (1..=20).collect::<Vec<_>>());
    })
    .await;
}
