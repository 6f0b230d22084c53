//! Who is looking: the signed-in user when the server runs with `--auth` (the API's guard has
//! authenticated them and checked the page's own resource), or nobody in particular when it
//! runs without. Lists filter through [`Viewer::may`]; deletions check MANAGE on top of the
//! guard's EDIT.
use crate::PageError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use cairn_api::auth::{Authn, Caller};
use cairn_core::auth::{Permission, ResourceType, User};
use std::sync::Arc;

/// The caller of a page, and the permissions service when authentication is on.
#[derive(Clone, Default)]
pub struct Viewer {
    signed_in: Option<(User, Arc<Authn>)>,
}

impl<S: Send + Sync> FromRequestParts<S> for Viewer {
    type Rejection = PageError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, PageError> {
        let caller = parts.extensions.get::<Caller>().map(|c| c.0.clone());
        let authn = parts.extensions.get::<Arc<Authn>>().cloned();
        Ok(Viewer {
            signed_in: caller.zip(authn),
        })
    }
}

impl Viewer {
    /// Whether the viewer holds `level` on a resource; always without `--auth`. Reads the
    /// store on a cache miss: call it on the blocking pool.
    pub fn may(&self, kind: ResourceType, id: &str, level: Permission) -> Result<bool, PageError> {
        match &self.signed_in {
            None => Ok(true),
            Some((user, authn)) => Ok(authn.may(user, kind, id, level)?),
        }
    }

    /// A 403 page unless the viewer holds `level`.
    pub fn require(
        &self,
        kind: ResourceType,
        id: &str,
        level: Permission,
        doing: &str,
    ) -> Result<(), PageError> {
        if self.may(kind, id, level)? {
            return Ok(());
        }
        Err(PageError::forbidden(format!(
            "Permission denied: {doing} needs {} on the {} '{id}'.",
            level.as_str(),
            kind.as_str().replace('_', " ")
        )))
    }

    /// After the viewer created a resource: they get MANAGE on it, as through the API.
    pub fn created(&self, kind: ResourceType, id: &str) -> Result<(), PageError> {
        if let Some((user, authn)) = &self.signed_in {
            authn.created(user, kind, id)?;
        }
        Ok(())
    }

    /// After a registered model was renamed: its grants follow it, as through the API.
    pub fn model_renamed(&self, old: &str, new: &str) -> Result<(), PageError> {
        if let Some((_, authn)) = &self.signed_in {
            authn
                .auth()
                .store()
                .rename_grants(ResourceType::RegisteredModel, old, new)?;
            authn.forget();
        }
        Ok(())
    }

    /// After a registered model was deleted: its grants go with it.
    pub fn model_deleted(&self, name: &str) -> Result<(), PageError> {
        if let Some((_, authn)) = &self.signed_in {
            authn
                .auth()
                .store()
                .delete_grants_on(ResourceType::RegisteredModel, name)?;
            authn.forget();
        }
        Ok(())
    }
}
