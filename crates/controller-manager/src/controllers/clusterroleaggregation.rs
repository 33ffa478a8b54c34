//! ClusterRole aggregation: a ClusterRole with an `aggregationRule` gets, as its rules, the
//! union of the rules of the ClusterRoles its label selectors pick (how `admin`, `edit` and
//! `view` grow when a CRD's roles carry `rbac.authorization.k8s.io/aggregate-to-*`). Any
//! ClusterRole change queues every aggregated role; each reconcile recomputes one from the
//! informer's store (rkube-auth's `aggregate`) and writes it only when its rules differ.

use crate::informers::SharedInformers;
use crate::{Action, Context, Controller, Error, Registration};
use k8s_openapi::api::rbac::v1::ClusterRole;
use rkube_client::{Store, WorkQueue};
use std::sync::Arc;

/// Keeps aggregated ClusterRoles' rules in step with the roles they select.
pub struct ClusterRoleAggregation {
    ctx: Context,
    roles: Store<ClusterRole>,
}

/// Any ClusterRole event may change what an aggregated role selects: queue them all.
pub fn register(ctx: &Context, informers: &SharedInformers) -> Registration {
    let queue = WorkQueue::new();
    let (q, roles) = (queue.clone(), informers.store::<ClusterRole>());
    informers.on_event::<ClusterRole>(move |_| {
        for role in roles.list() {
            if role.aggregation_rule.is_some() {
                q.add(role.metadata.name.clone().unwrap_or_default());
            }
        }
    });
    let controller = ClusterRoleAggregation { ctx: ctx.clone(), roles: informers.store() };
    Registration::new(Arc::new(controller), queue)
}

impl Controller for ClusterRoleAggregation {
    fn name(&self) -> &'static str {
        "clusterrole-aggregation"
    }

    async fn reconcile(&self, name: &str) -> Result<Action, Error> {
        let Some(role) = self.roles.get(name) else { return Ok(Action::Done) };
        if role.aggregation_rule.is_none() {
            return Ok(Action::Done);
        }
        let all: Vec<ClusterRole> = self.roles.list().iter().map(|r| (**r).clone()).collect();
        let Some(rules) = rkube_auth::rbac::aggregate(&all).remove(name) else { return Ok(Action::Done) };
        if role.rules.as_deref().unwrap_or_default() == rules.as_slice() {
            return Ok(Action::Done);
        }
        let mut updated = (*role).clone();
        updated.rules = Some(rules);
        match self.ctx.client.api::<ClusterRole>(None).update(&updated).await {
            Ok(_) => tracing::info!(clusterrole = name, "aggregated rules updated"),
            // A newer version is on its way through the informer, which queues this again.
            Err(e) if e.is_conflict() || e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        Ok(Action::Done)
    }
}
