//! Registered model versions as Open Inference Protocol models inside `cairn server`: the OIP
//! model name is the registered model's name, the OIP version its number or an alias.
use crate::artifacts::proxied_root;
use crate::bound::{Binding, FeatureLookup};
use crate::oip::{unknown_text, ModelError, ModelSource, ServedModel};
use cairn_core::paths::ArtifactPath;
use cairn_core::registry::parse_version;
use cairn_core::{ArtifactStore, Error, Registry, VersionIdentity, VersionSelector};
use cairn_serving::{OnnxModel, Runner, RunnerOptions};
use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};

/// Resolves names, numbers and aliases through the registry on every request (so a moved
/// alias answers from the next request on) and keeps loaded versions in memory, keyed by the
/// version's identity (name, number and creation time: a model deleted and created again
/// restarts at version 1 and must not answer with the old graph), least recently used first
/// out once over the bounds.
pub struct RegistryModels {
    registry: Registry,
    artifacts: Arc<dyn ArtifactStore>,
    loaded: Mutex<LoadedModels>,
    options: RunnerOptions,
    bounds: CacheBounds,
    features: Option<Arc<dyn FeatureLookup>>,
}

/// How many loaded versions, and how many bytes of graph, stay in memory.
#[derive(Debug, Clone, Copy)]
pub struct CacheBounds {
    /// Most versions loaded at once.
    pub max_models: usize,
    /// Most bytes of ONNX graphs loaded at once (the newest always stays).
    pub max_bytes: u64,
}

impl Default for CacheBounds {
    fn default() -> Self {
        CacheBounds {
            max_models: 32,
            max_bytes: 4 << 30,
        }
    }
}

/// A version's identity: what a re-created version with the same number never shares, and the
/// feature service it is bound to (bound again, it loads again: a rare change).
type Identity = (String, i64, i64, Option<String>);

#[derive(Default)]
struct LoadedModels {
    entries: HashMap<Identity, Loaded>,
    clock: u64,
}

struct Loaded {
    served: Arc<ServedModel>,
    bytes: u64,
    last_used: u64,
}

impl LoadedModels {
    fn get(&mut self, key: &Identity) -> Option<Arc<ServedModel>> {
        self.clock += 1;
        let clock = self.clock;
        self.entries.get_mut(key).map(|e| {
            e.last_used = clock;
            e.served.clone()
        })
    }

    /// Drops every entry of `name` and `number` that is not `key` (older incarnations).
    fn forget_others(&mut self, key: &Identity) {
        self.entries
            .retain(|k, _| k == key || k.0 != key.0 || k.1 != key.1);
    }

    fn insert(
        &mut self,
        key: Identity,
        served: Arc<ServedModel>,
        bytes: u64,
        bounds: CacheBounds,
    ) -> Arc<ServedModel> {
        self.forget_others(&key);
        self.clock += 1;
        let clock = self.clock;
        let kept = self
            .entries
            .entry(key.clone())
            .or_insert(Loaded {
                served,
                bytes,
                last_used: clock,
            })
            .served
            .clone();
        loop {
            let total: u64 = self.entries.values().map(|e| e.bytes).sum();
            if self.entries.len() <= bounds.max_models.max(1) && total <= bounds.max_bytes {
                break;
            }
            let oldest = self
                .entries
                .iter()
                .filter(|(k, _)| **k != key)
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => {
                    self.entries.remove(&k);
                }
                None => break,
            }
        }
        kept
    }
}

impl RegistryModels {
    /// Serves the versions of `registry` whose files are in `artifacts`.
    pub fn new(
        registry: Registry,
        artifacts: Arc<dyn ArtifactStore>,
        options: RunnerOptions,
        bounds: CacheBounds,
    ) -> Self {
        RegistryModels {
            registry,
            artifacts,
            loaded: Mutex::new(LoadedModels::default()),
            options,
            bounds,
            features: None,
        }
    }

    /// Versions bound to a feature service look their features up in `lookup`.
    pub fn with_features(mut self, lookup: Option<Arc<dyn FeatureLookup>>) -> Self {
        self.features = lookup;
        self
    }

    /// How many versions are loaded now.
    pub fn loaded_count(&self) -> usize {
        self.loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entries
            .len()
    }

    /// The (number, creation time) of the version a request names: one query per request,
    /// so a version deleted and created again, or an alias moved through another replica, is
    /// seen at the next request.
    fn identify(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<Option<VersionIdentity>, Error> {
        let which = match version {
            None => VersionSelector::Newest,
            Some(v) if v.chars().all(|c| c.is_ascii_digit()) => {
                VersionSelector::Number(parse_version(v)?)
            }
            Some(alias) => VersionSelector::Alias(alias.to_owned()),
        };
        self.registry.version_identity(name, &which)
    }

    fn load(&self, name: &str, number: i64) -> Result<(OnnxModel, Vec<u8>), ModelError> {
        let unservable =
            |why: String| ModelError::Unservable(format!("model '{name}' version {number}: {why}"));
        let version = self
            .registry
            .get_version(name, number)
            .map_err(|e| unservable(e.to_string()))?;
        let bytes = onnx_bytes(self.artifacts.as_ref(), &version.storage_location)
            .map_err(unservable)?
            .ok_or_else(|| unservable(format!("no .onnx file in {}", version.storage_location)))?;
        let model = OnnxModel::from_bytes(&bytes).map_err(|e| unservable(e.to_string()))?;
        Ok((model, bytes))
    }
}

/// The one `.onnx` file among a version's files: `None` when there is none (a model of
/// another flavor), an error when the files cannot be read or hold several.
fn onnx_bytes(
    artifacts: &dyn ArtifactStore,
    storage_location: &str,
) -> Result<Option<Vec<u8>>, String> {
    let root = proxied_root(storage_location).ok_or_else(|| {
        format!("its files are not in Cairn's artifact store ({storage_location})")
    })?;
    let dir = ArtifactPath::parse(&root).map_err(|e| e.to_string())?;
    let onnx: Vec<String> = artifacts
        .list(&dir)
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|e| !e.is_dir && e.path.ends_with(".onnx"))
        .map(|e| e.path)
        .collect();
    let file = match onnx.as_slice() {
        [one] => one.clone(),
        [] => return Ok(None),
        _ => return Err(format!("several .onnx files in {storage_location}")),
    };
    let path = dir.join(&ArtifactPath::parse(&file).map_err(|e| e.to_string())?);
    let (mut reader, size) = artifacts.open(&path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::with_capacity(size as usize);
    reader.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    Ok(Some(bytes))
}

/// The version tag that holds an ONNX version's signature (inputs and outputs, as JSON).
pub const SIGNATURE_TAG: &str = "cairn.signature";

/// Checks the files a new version of `name` would serve, at `storage_location`: an ONNX graph
/// that cannot be loaded is refused (the error names the operator or the limit); one that
/// loads gives its signature (inputs and outputs as JSON) for the [`SIGNATURE_TAG`] tag.
/// Files without an `.onnx` file, or outside Cairn's artifact store, give `None`.
pub fn checked_signature(
    artifacts: &dyn ArtifactStore,
    name: &str,
    storage_location: &str,
) -> Result<Option<String>, Error> {
    if proxied_root(storage_location).is_none() {
        return Ok(None);
    }
    let bytes = match onnx_bytes(artifacts, storage_location) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Ok(None),
        Err(why) => return Err(Error::InvalidParameter(why)),
    };
    let model = OnnxModel::from_bytes(&bytes).map_err(|e| {
        Error::InvalidParameter(format!("a version of model '{name}' cannot be served: {e}"))
    })?;
    let sig = model.signature();
    let signature = serde_json::json!({
        "inputs": sig.inputs.iter().map(crate::oip::spec_json).collect::<Vec<_>>(),
        "outputs": sig.outputs.iter().map(crate::oip::spec_json).collect::<Vec<_>>(),
    })
    .to_string();
    // Very wide models would exceed the tag value limit: their signature stays in the graph.
    Ok((signature.len() <= 5000).then_some(signature))
}

impl ModelSource for RegistryModels {
    fn resolve(&self, name: &str, version: Option<&str>) -> Result<Arc<ServedModel>, ModelError> {
        let identity = self
            .identify(name, version)
            .map_err(|e| match e {
                Error::NotFound(_) | Error::InvalidParameter(_) => {
                    ModelError::Unknown(unknown_text(name, version))
                }
                other => ModelError::Unservable(other.to_string()),
            })?
            .ok_or_else(|| ModelError::Unknown(unknown_text(name, version)))?;
        let number = identity.number;
        let key: Identity = (
            name.to_owned(),
            number,
            identity.created_ms,
            identity.feature_service.clone(),
        );
        if let Some(hit) = self
            .loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(hit.clone());
        }
        // Loading happens outside the lock; two first requests may both load, one wins.
        let (model, bytes) = self.load(name, number)?;
        let mut served = ServedModel::new(
            name.to_string(),
            number.to_string(),
            Runner::new(model, self.options),
            &bytes,
        );
        served.binding = identity.feature_service.map(|service| Binding {
            service,
            lookup: self.features.clone(),
        });
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        Ok(loaded.insert(key, Arc::new(served), bytes.len() as u64, self.bounds))
    }

    fn loaded_bytes(&self, name: &str, number: i64, created_ms: i64) -> Option<u64> {
        self.loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entries
            .iter()
            .find(|(k, _)| k.0 == name && k.1 == number && k.2 == created_ms)
            .map(|(_, e)| e.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(name: &str) -> Arc<ServedModel> {
        let bytes = cairn_serving::build::logistic_regression_onnx(&[1.0, 2.0], 0.5);
        Arc::new(ServedModel::new(
            name.to_string(),
            "1".into(),
            Runner::new(
                OnnxModel::from_bytes(&bytes).unwrap_or_else(|e| panic!("{e}")),
                RunnerOptions::default(),
            ),
            &bytes,
        ))
    }

    fn key(name: &str, number: i64, created: i64) -> Identity {
        (name.to_string(), number, created, None)
    }

    #[test]
    fn least_recently_used_versions_leave_first_and_a_recreated_version_replaces_its_old_self() {
        let bounds = CacheBounds {
            max_models: 2,
            max_bytes: 1000,
        };
        let mut cache = LoadedModels::default();
        cache.insert(key("a", 1, 10), served("a"), 100, bounds);
        cache.insert(key("b", 1, 10), served("b"), 100, bounds);
        assert!(cache.get(&key("a", 1, 10)).is_some());
        cache.insert(key("c", 1, 10), served("c"), 100, bounds);
        // `b` was used least recently.
        assert!(cache.get(&key("b", 1, 10)).is_none());
        assert!(cache.get(&key("a", 1, 10)).is_some() && cache.get(&key("c", 1, 10)).is_some());
        // Version 1 of `a` created again: the old graph is gone, not just shadowed.
        cache.insert(key("a", 1, 99), served("a"), 100, bounds);
        assert!(cache.get(&key("a", 1, 10)).is_none());
        assert_eq!(cache.entries.len(), 2);
        // The byte bound: one big graph pushes the others out, but itself stays.
        cache.insert(key("big", 1, 1), served("big"), 5000, bounds);
        assert_eq!(cache.entries.len(), 1);
        assert!(cache.get(&key("big", 1, 1)).is_some());
    }
}
