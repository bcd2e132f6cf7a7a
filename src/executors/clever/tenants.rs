//! Multi-tenant mode: a job's Clever organisation and token come from the
//! custom attributes of its top-level GitLab group.
//!
//! The group is derived from GitLab-controlled data only: the payload's
//! `job_info.project_id` → `GET /projects/:id` → the first segment of
//! `namespace.full_path`. A job variable (`CI_PROJECT_ROOT_NAMESPACE` can
//! be defined by any user) never chooses a tenant. Project namespaces are
//! cached per project id for the same TTL (a project can be transferred).
//! GitLab reads an all-digit `/groups/:id` as a group id, so the group is
//! first resolved by path (`GET /groups/:path`), its `full_path` must equal
//! the namespace and it must have no parent; its attributes are then read
//! by numeric id.
//!
//! Results are cached per namespace for a TTL (the reference asked GitLab
//! at every provision and state load). An expired entry is kept as a
//! fallback for existing resources only ([`Use::Existing`]: decommission,
//! listing, the steps of a created resource): when GitLab is unavailable
//! (transient error), the last known credentials are used rather than
//! failing, so that decommissions go on during a coordinator outage, but
//! never for a new create ([`Use::Create`]), and never once the entry is
//! older than [`MAX_STALE`]. A missing attribute or a refused lookup is
//! a [`TenantError`] with a clear message, never a crash.
//!
//! Every cache is bounded ([`CACHE_CAPACITY`] entries; the entry answered
//! longest ago goes first) and expires: project namespaces after the TTL,
//! groups' organisations after [`MAX_STALE`]. An organisation dropped from
//! the ones known since start is handed to the listings
//! ([`TenantResolver::take_dropped`]), which resolve it again rather than
//! take its resources for vanished.

use super::api::OrgAuth;
use super::GroupAttributes;
use crate::secret::Secret;
use actix_rt::time::Instant;
use paas_actors::ports::CoordinatorError;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

/// Oldest expired entry still used while GitLab is unavailable.
pub const MAX_STALE: Duration = Duration::from_secs(24 * 3600);

/// Most entries of each cache (groups, projects, organisations): beyond,
/// the entry answered longest ago is dropped.
pub const CACHE_CAPACITY: usize = 1_000;

/// Drops from `map` the entries older than `max_age`, then, while it holds
/// `capacity` entries or more, the oldest one: room for one more.
fn make_room<K: Ord + Clone, V>(
    map: &mut BTreeMap<K, (Instant, V)>,
    max_age: Duration,
    capacity: usize,
) -> Vec<(K, V)> {
    let mut dropped = Vec::new();
    let expired: Vec<K> = map
        .iter()
        .filter(|(_, (at, _))| at.elapsed() >= max_age)
        .map(|(k, _)| k.clone())
        .collect();
    for k in expired {
        if let Some((_, v)) = map.remove(&k) {
            dropped.push((k, v));
        }
    }
    while map.len() >= capacity.max(1) {
        let oldest = map
            .iter()
            .min_by_key(|(_, (at, _))| *at)
            .map(|(k, _)| k.clone());
        match oldest.and_then(|k| map.remove(&k).map(|(_, v)| (k, v))) {
            Some(d) => dropped.push(d),
            None => break,
        }
    }
    dropped
}

/// What the organisation is needed for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Use {
    /// Creating a resource: only fresh answers from GitLab.
    Create,
    /// Operating on, or listing, existing resources: an expired entry up to
    /// [`MAX_STALE`] old serves while GitLab is unavailable.
    Existing,
}

/// Why a tenant's organisation could not be found.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TenantError {
    /// The saved resource names no top-level group.
    #[error("no GitLab top-level group known, cannot find the Clever Cloud organisation")]
    NoNamespace,
    /// The job payload has no `job_info.project_id`.
    #[error("the job payload has no job_info.project_id: its GitLab group, hence its Clever Cloud organisation, cannot be known")]
    NoProject,
    /// GitLab did not give the project's namespace.
    #[error("find-orga: cannot read the namespace of GitLab project {project_id}: {source}")]
    Project {
        /// The project id.
        project_id: i64,
        /// What the GitLab client reported.
        source: CoordinatorError,
    },
    /// GitLab did not give the group's custom attributes.
    #[error(
        "find-orga: cannot read the custom attributes of GitLab group {namespace:?}: {source}"
    )]
    Lookup {
        /// The group path.
        namespace: String,
        /// What the GitLab client reported.
        source: CoordinatorError,
    },
    /// GitLab answered with another group than the one asked for (an
    /// all-digit path read as an id) or with a subgroup.
    #[error("find-orga: GitLab group {namespace:?} is not a top-level group of that path (GitLab answered with {found:?})")]
    NotThatGroup {
        /// The group path asked for.
        namespace: String,
        /// The full path of the group GitLab answered with.
        found: String,
    },
    /// A resource's organisation is no longer its group's, and its token is
    /// not known since start.
    #[error("the Clever Cloud organisation {orga_id:?} of this resource is no longer the one of GitLab group {namespace:?} and its token is unknown since the runner started; delete the application in that organisation by hand")]
    OrgMoved {
        /// The group path.
        namespace: String,
        /// The organisation the resource was created in.
        orga_id: String,
    },
    /// A needed attribute is absent or empty.
    #[error("GitLab group {namespace:?} has no (or an empty) custom attribute {attribute:?}; an administrator must set it to use Clever Cloud runners")]
    MissingAttribute {
        /// The group path.
        namespace: String,
        /// The attribute name.
        attribute: String,
    },
}

impl TenantError {
    /// True when asking again later may succeed without anyone acting.
    pub fn is_transient(&self) -> bool {
        match self {
            TenantError::Lookup { source, .. } | TenantError::Project { source, .. } => {
                source.is_transient()
            }
            _ => false,
        }
    }
}

/// A group and the organisation (with its token) it mapped to.
type GroupOrg = (String, OrgAuth);

/// Resolves and caches tenants' organisations.
pub struct TenantResolver {
    attributes: Rc<dyn GroupAttributes>,
    id_attribute: String,
    token_attribute: String,
    ttl: Duration,
    /// Organisation of each group, as GitLab last gave it (at most
    /// [`CACHE_CAPACITY`], none older than [`MAX_STALE`]).
    cache: RefCell<BTreeMap<String, (Instant, OrgAuth)>>,
    /// Top-level group of each project id, as GitLab last gave it (at most
    /// [`CACHE_CAPACITY`], none older than the TTL).
    projects: RefCell<BTreeMap<i64, (Instant, String)>>,
    /// The organisations resolved since start, by organisation id, with the
    /// last group that mapped to each: a resource stays in the organisation
    /// it was created in even when its group moves. At most
    /// [`CACHE_CAPACITY`]: the one resolved longest ago is dropped, and
    /// handed to [`TenantResolver::take_dropped`] so that listings resolve
    /// it again rather than miss it.
    by_org: RefCell<BTreeMap<String, (Instant, GroupOrg)>>,
    /// `(group, organisation id)` dropped from `by_org`, not yet taken.
    dropped: RefCell<Vec<(String, String)>>,
}

/// The first segment of a namespace's full path (`a/b/c` → `a`).
fn root_of(full_path: &str) -> &str {
    full_path.split('/').next().unwrap_or(full_path)
}

impl TenantResolver {
    /// A resolver reading `id_attribute` / `token_attribute` through
    /// `attributes`, caching for `ttl`.
    pub fn new(
        attributes: Rc<dyn GroupAttributes>,
        id_attribute: &str,
        token_attribute: &str,
        ttl: Duration,
    ) -> Self {
        TenantResolver {
            attributes,
            id_attribute: id_attribute.to_string(),
            token_attribute: token_attribute.to_string(),
            ttl,
            cache: RefCell::new(BTreeMap::new()),
            projects: RefCell::new(BTreeMap::new()),
            by_org: RefCell::new(BTreeMap::new()),
            dropped: RefCell::new(Vec::new()),
        }
    }

    /// The credentials of organisation `orga_id`, if a group mapped to it
    /// since start (never from a resource: tenant tokens are not saved).
    pub fn org_by_id(&self, orga_id: &str) -> Option<OrgAuth> {
        self.by_org
            .borrow()
            .get(orga_id)
            .map(|(_, (_, o))| o.clone())
    }

    /// The organisation `namespace` resolved to, if still cached.
    pub fn cached_org_id(&self, namespace: &str) -> Option<String> {
        let cache = self.cache.borrow();
        let (at, org) = cache.get(namespace)?;
        (at.elapsed() < self.ttl).then(|| org.orga_id.clone())
    }

    /// The top-level group of the project `project_id` (the job's
    /// `job_info.project_id`), as GitLab says.
    pub async fn job_namespace(&self, project_id: Option<i64>) -> Result<String, TenantError> {
        let project_id = project_id.ok_or(TenantError::NoProject)?;
        if let Some((at, ns)) = self.projects.borrow().get(&project_id) {
            if at.elapsed() < self.ttl {
                return Ok(ns.clone());
            }
        }
        let full_path = self
            .attributes
            .project_namespace(project_id)
            .await
            .map_err(|source| TenantError::Project { project_id, source })?;
        let root = root_of(&full_path).to_string();
        if root.is_empty() {
            return Err(TenantError::Project {
                project_id,
                source: CoordinatorError::Unexpected {
                    detail: format!("empty namespace path {full_path:?}"),
                },
            });
        }
        let mut projects = self.projects.borrow_mut();
        if !projects.contains_key(&project_id) {
            make_room(&mut projects, self.ttl, CACHE_CAPACITY);
        }
        projects.insert(project_id, (Instant::now(), root.clone()));
        Ok(root)
    }

    /// The organisation of the top-level group `namespace`.
    pub async fn resolve(&self, namespace: &str, purpose: Use) -> Result<OrgAuth, TenantError> {
        if namespace.is_empty() {
            return Err(TenantError::NoNamespace);
        }
        let cached = self.cache.borrow().get(namespace).cloned();
        if let Some((at, org)) = &cached {
            if at.elapsed() < self.ttl {
                return Ok(org.clone());
            }
        }
        let attrs = match self.group_attributes(namespace).await {
            Ok(a) => a,
            Err(e) => {
                if e.is_transient() && purpose == Use::Existing {
                    if let Some((at, org)) = cached {
                        if at.elapsed() < MAX_STALE {
                            return Ok(org);
                        }
                    }
                }
                return Err(e);
            }
        };
        let find = |key: &str| {
            attrs
                .iter()
                .find(|(k, v)| k == key && !v.is_empty())
                .map(|(_, v)| v.clone())
                .ok_or_else(|| TenantError::MissingAttribute {
                    namespace: namespace.to_string(),
                    attribute: key.to_string(),
                })
        };
        let org = OrgAuth {
            orga_id: find(&self.id_attribute)?,
            token: Secret::new(find(&self.token_attribute)?),
        };
        let mut cache = self.cache.borrow_mut();
        if !cache.contains_key(namespace) {
            make_room(&mut cache, MAX_STALE, CACHE_CAPACITY);
        }
        cache.insert(namespace.to_string(), (Instant::now(), org.clone()));
        let mut by_org = self.by_org.borrow_mut();
        if !by_org.contains_key(&org.orga_id) {
            // Capacity only: an organisation is dropped only to make room.
            let dropped = make_room(&mut by_org, Duration::MAX, CACHE_CAPACITY);
            self.dropped.borrow_mut().extend(
                dropped
                    .into_iter()
                    .map(|(orga_id, (group, _))| (group, orga_id)),
            );
        }
        by_org.insert(
            org.orga_id.clone(),
            (Instant::now(), (namespace.to_string(), org.clone())),
        );
        Ok(org)
    }

    /// The custom attributes of the top-level group of path `namespace`,
    /// read by its numeric id once GitLab confirmed the path.
    async fn group_attributes(
        &self,
        namespace: &str,
    ) -> Result<Vec<(String, String)>, TenantError> {
        let lookup = |source| TenantError::Lookup {
            namespace: namespace.to_string(),
            source,
        };
        let group = self
            .attributes
            .group_by_path(namespace)
            .await
            .map_err(lookup)?;
        if group.full_path != namespace || group.parent_id.is_some() {
            return Err(TenantError::NotThatGroup {
                namespace: namespace.to_string(),
                found: group.full_path,
            });
        }
        self.attributes
            .group_custom_attributes(&group.id.to_string())
            .await
            .map_err(lookup)
    }

    /// Whether the organisation a tracked resource records can be operated
    /// on: its group `namespace` resolves (warming the cache), and the
    /// organisation it was created in, `orga_id` when recorded, is one whose
    /// token is known.
    pub async fn confirm_recorded(
        &self,
        namespace: &str,
        orga_id: Option<&str>,
    ) -> Result<(), TenantError> {
        self.resolve(namespace, Use::Existing).await?;
        match orga_id {
            Some(o) if self.org_by_id(o).is_none() => Err(TenantError::OrgMoved {
                namespace: namespace.to_string(),
                orga_id: o.to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// Every organisation resolved so far, once each, with the last group
    /// that mapped to it (for listings).
    pub fn known(&self) -> Vec<(String, OrgAuth)> {
        self.by_org
            .borrow()
            .values()
            .map(|(_, entry)| entry.clone())
            .collect()
    }

    /// The `(group, organisation id)` dropped from the known organisations
    /// to make room since the last call: a listing must resolve them again
    /// (or skip them), never miss them.
    pub fn take_dropped(&self) -> Vec<(String, String)> {
        std::mem::take(&mut *self.dropped.borrow_mut())
    }
}

#[cfg(test)]
mod tests {
    use super::super::GroupInfo;
    use super::*;
    use paas_actors::ports::PortFuture;
    use std::cell::Cell;

    type Answer = Result<Vec<(String, String)>, CoordinatorError>;

    /// Attributes served from a table; answers are scripted per call.
    struct FakeAttrs {
        answers: RefCell<Vec<Answer>>,
        calls: Cell<u32>,
    }

    impl GroupAttributes for FakeAttrs {
        fn project_namespace(
            &self,
            project_id: i64,
        ) -> PortFuture<'_, Result<String, CoordinatorError>> {
            self.calls.set(self.calls.get() + 1);
            let answer = match project_id {
                1 => Ok("acme/sub/deeper".to_string()),
                2 => Ok("solo".to_string()),
                _ => Err(CoordinatorError::Unexpected {
                    detail: "HTTP 404".into(),
                }),
            };
            Box::pin(async move { answer })
        }

        fn group_by_path<'a>(
            &'a self,
            path: &'a str,
        ) -> PortFuture<'a, Result<GroupInfo, CoordinatorError>> {
            // "7" is read as the id of group "acme"; "acme/sub" is a subgroup.
            let info = match path {
                "7" => GroupInfo {
                    id: 7,
                    full_path: "acme".into(),
                    parent_id: None,
                },
                "acme/sub" => GroupInfo {
                    id: 8,
                    full_path: path.into(),
                    parent_id: Some(7),
                },
                _ => GroupInfo {
                    id: 9,
                    full_path: path.into(),
                    parent_id: None,
                },
            };
            Box::pin(async move { Ok(info) })
        }

        fn group_custom_attributes<'a>(
            &'a self,
            _group_path: &'a str,
        ) -> PortFuture<'a, Result<Vec<(String, String)>, CoordinatorError>> {
            self.calls.set(self.calls.get() + 1);
            let next = self.answers.borrow_mut().remove(0);
            Box::pin(async move { next })
        }
    }

    fn attrs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn resolver(answers: Vec<Answer>, ttl: Duration) -> (Rc<FakeAttrs>, TenantResolver) {
        let fake = Rc::new(FakeAttrs {
            answers: RefCell::new(answers),
            calls: Cell::new(0),
        });
        let r = TenantResolver::new(fake.clone(), "cc_orga_id", "cc_orga_token", ttl);
        (fake, r)
    }

    #[actix_rt::test]
    async fn resolves_and_caches_per_namespace() {
        let good = attrs(&[
            ("x", "y"),
            ("cc_orga_id", "orga_1"),
            ("cc_orga_token", "tok"),
        ]);
        let (fake, r) = resolver(vec![Ok(good)], Duration::from_secs(60));
        let org = r.resolve("acme", Use::Existing).await.expect("resolved");
        assert_eq!(org.orga_id, "orga_1");
        assert_eq!(org.token.expose(), "tok");
        let again = r.resolve("acme", Use::Existing).await.expect("cached");
        assert_eq!(again, org);
        assert_eq!(fake.calls.get(), 1);
        assert_eq!(r.known(), vec![("acme".to_string(), org)]);
    }

    #[actix_rt::test]
    async fn a_jobs_group_is_the_root_of_its_projects_namespace_cached() {
        let (fake, r) = resolver(Vec::new(), Duration::from_secs(60));
        assert_eq!(r.job_namespace(Some(1)).await, Ok("acme".to_string()));
        assert_eq!(r.job_namespace(Some(1)).await, Ok("acme".to_string()));
        assert_eq!(fake.calls.get(), 1);
        assert_eq!(r.job_namespace(Some(2)).await, Ok("solo".to_string()));
        assert_eq!(r.job_namespace(None).await, Err(TenantError::NoProject));
        let err = r.job_namespace(Some(3)).await.expect_err("404");
        assert!(matches!(err, TenantError::Project { project_id: 3, .. }));
        assert!(!err.is_transient());
        assert!(err.to_string().contains("project 3"), "{err}");
    }

    #[actix_rt::test]
    async fn a_group_answered_for_another_path_is_refused() {
        let good = attrs(&[("cc_orga_id", "orga_1"), ("cc_orga_token", "tok")]);
        let (fake, r) = resolver(vec![Ok(good)], Duration::from_secs(60));
        for (ns, found) in [("7", "acme"), ("acme/sub", "acme/sub")] {
            let err = r
                .resolve(ns, Use::Create)
                .await
                .expect_err("not that group");
            assert_eq!(
                err,
                TenantError::NotThatGroup {
                    namespace: ns.into(),
                    found: found.into()
                }
            );
            assert!(!err.is_transient());
        }
        // No attributes were read for them.
        assert_eq!(fake.calls.get(), 0);
        assert!(r.resolve("acme", Use::Existing).await.is_ok());
    }

    #[actix_rt::test]
    async fn an_expired_entry_never_serves_a_create_nor_beyond_a_day() {
        tokio::time::pause();
        let good = attrs(&[("cc_orga_id", "orga_1"), ("cc_orga_token", "tok")]);
        let down = || {
            Err(CoordinatorError::Unavailable {
                detail: "502".into(),
                retry_after: None,
            })
        };
        let (_, r) = resolver(
            vec![Ok(good), down(), down(), down(), down()],
            Duration::from_secs(60),
        );
        r.resolve("acme", Use::Create).await.expect("fresh");
        tokio::time::advance(Duration::from_secs(120)).await;
        // Expired, GitLab down: no create, but existing resources go on.
        let err = r.resolve("acme", Use::Create).await.expect_err("create");
        assert!(err.is_transient());
        assert!(r.resolve("acme", Use::Existing).await.is_ok());
        tokio::time::advance(MAX_STALE).await;
        // Older than a day: refused for everything.
        assert!(r.resolve("acme", Use::Existing).await.is_err());
        assert!(r.resolve("acme", Use::Create).await.is_err());
    }

    #[actix_rt::test]
    async fn missing_or_empty_attribute_is_a_clear_error() {
        let (_, r) = resolver(
            vec![
                Ok(attrs(&[("cc_orga_id", "orga_1")])),
                Ok(attrs(&[("cc_orga_id", ""), ("cc_orga_token", "t")])),
            ],
            Duration::from_secs(60),
        );
        for missing in ["cc_orga_token", "cc_orga_id"] {
            let err = r.resolve("acme", Use::Existing).await.expect_err("missing");
            assert_eq!(
                err,
                TenantError::MissingAttribute {
                    namespace: "acme".into(),
                    attribute: missing.into()
                }
            );
            assert!(!err.is_transient());
            assert!(err.to_string().contains(missing));
        }
        assert!(r.known().is_empty());
        assert_eq!(
            r.resolve("", Use::Existing).await,
            Err(TenantError::NoNamespace)
        );
    }

    #[actix_rt::test]
    async fn expired_entry_is_refreshed_and_used_when_gitlab_is_down() {
        let good = attrs(&[("cc_orga_id", "orga_1"), ("cc_orga_token", "tok")]);
        let down = CoordinatorError::Unavailable {
            detail: "502".into(),
            retry_after: None,
        };
        let gone = CoordinatorError::Unexpected {
            detail: "HTTP 404".into(),
        };
        let (fake, r) = resolver(
            vec![Ok(good), Err(down.clone()), Err(gone.clone()), Err(down)],
            Duration::ZERO,
        );
        r.resolve("acme", Use::Existing).await.expect("first");
        // Expired (TTL 0) and GitLab down: the last known org is used.
        assert_eq!(
            r.resolve("acme", Use::Existing).await.map(|o| o.orga_id),
            Ok("orga_1".into())
        );
        // A permanent refusal is not papered over.
        let err = r.resolve("acme", Use::Existing).await.expect_err("404");
        assert!(matches!(err, TenantError::Lookup { .. }));
        assert!(!err.is_transient());
        // Unknown namespace while GitLab is down: transient error.
        let err = r.resolve("other", Use::Existing).await.expect_err("down");
        assert!(err.is_transient());
        assert_eq!(fake.calls.get(), 4);
    }

    #[actix_rt::test]
    async fn make_room_drops_the_expired_then_the_oldest() {
        tokio::time::pause();
        let mut map = BTreeMap::new();
        for k in 0..3 {
            map.insert(k, (Instant::now(), k * 10));
            tokio::time::advance(Duration::from_secs(10)).await;
        }
        // Entry 0 is 30 s old, 1 is 20 s, 2 is 10 s.
        let dropped = make_room(&mut map, Duration::from_secs(25), 10);
        assert_eq!(dropped, vec![(0, 0)]);
        let dropped = make_room(&mut map, Duration::MAX, 2);
        assert_eq!(dropped, vec![(1, 10)], "the oldest, to leave room for one");
        assert_eq!(map.keys().copied().collect::<Vec<_>>(), vec![2]);
    }

    #[actix_rt::test]
    async fn the_organisations_known_are_bounded_and_a_dropped_one_is_handed_over() {
        let answers = (0..=CACHE_CAPACITY)
            .map(|i| {
                Ok(attrs(&[
                    ("cc_orga_id", &format!("orga_{i}")),
                    ("cc_orga_token", "tok"),
                ]))
            })
            .collect();
        let (_, r) = resolver(answers, Duration::from_secs(60));
        for i in 0..=CACHE_CAPACITY {
            r.resolve(&format!("group{i}"), Use::Create)
                .await
                .expect("resolved");
        }
        assert_eq!(r.known().len(), CACHE_CAPACITY);
        assert_eq!(r.cache.borrow().len(), CACHE_CAPACITY);
        assert!(r.org_by_id("orga_0").is_none());
        assert!(r.org_by_id(&format!("orga_{CACHE_CAPACITY}")).is_some());
        assert_eq!(
            r.take_dropped(),
            vec![("group0".to_string(), "orga_0".to_string())]
        );
        assert!(r.take_dropped().is_empty(), "handed over once");
    }
}
