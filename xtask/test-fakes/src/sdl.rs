//! Akash SDL (Stack Definition Language) 2.0 checks, the subset the fake
//! provider needs: akash-network docs "SDL" (version, services.<n>.{image, env,
//! expose[{port, as, to[{global}]}]}, profiles.{compute, placement},
//! deployment.<svc>.<placement>.{profile, count}) and akash-network/node `sdl`
//! (`DeploymentGroups()`, `Version()`). Error wording is the fake's own.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use yaml_rust2::{Yaml, YamlLoader};

use crate::state::hex64;

/// One service as the provider runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    pub image: String,
    /// `KEY=VALUE` entries, in SDL order.
    pub env: Vec<String>,
    /// Container ports from `expose[].port`.
    pub ports: Vec<u16>,
    /// Sum of `deployment.<svc>.<placement>.count`.
    pub count: u64,
}

#[derive(Debug, Clone)]
pub struct Sdl {
    pub services: Vec<Service>,
    /// Canonical JSON of the resource groups (what `tx deployment update`
    /// refuses to change): per placement its attributes, pricing, and each
    /// service's compute resources and count.
    pub groups: String,
    /// Fingerprint of the whole SDL's canonical form (stands in for the
    /// manifest version hash the provider compares with the chain).
    pub version: String,
    /// The groups as `query deployment get` shows them (`group_spec`:
    /// name, requirements {signed_by {all_of, any_of}, attributes [{key,
    /// value}]}, resources [{resource, count, price {denom, amount}}]):
    /// akash-network/akash-api proto/node/akash/deployment/v1beta3/groupspec.proto
    /// and akash/base/v1beta3 (PlacementRequirements, SignedBy, Attribute).
    pub group_specs: Vec<Value>,
}

/// SDL `attributes` (a mapping) as the chain lists them: sorted `{key, value}`.
fn attribute_list(attributes: Option<&Value>) -> Value {
    let list: Vec<Value> = attributes
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
            json!({"key": k, "value": v})
        })
        .collect();
    Value::Array(list)
}

fn string_list(v: Option<&Value>) -> Value {
    Value::Array(
        v.and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|s| s.is_string())
            .cloned()
            .collect(),
    )
}

/// A price as the chain prints a DecCoin (`"1000.000000000000000000"`).
fn dec_coin(price: &Value) -> Value {
    let amount = match price.get("amount") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "0".into(),
    };
    let amount = if amount.contains('.') {
        amount
    } else {
        format!("{amount}.000000000000000000")
    };
    json!({"denom": price.get("denom").cloned().unwrap_or(Value::Null), "amount": amount})
}

/// YAML -> JSON with sorted keys, so key order and comments do not matter.
fn to_json(y: &Yaml) -> Value {
    match y {
        Yaml::Real(s) => s
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(|| Value::String(s.clone()), Value::Number),
        Yaml::Integer(i) => json!(i),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Array(a) => Value::Array(a.iter().map(to_json).collect()),
        Yaml::Hash(h) => {
            let mut m = Map::new();
            for (k, v) in h {
                let key = match k {
                    Yaml::String(s) | Yaml::Real(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    _ => format!("{k:?}"),
                };
                m.insert(key, to_json(v));
            }
            Value::Object(m)
        }
        Yaml::Alias(_) | Yaml::Null | Yaml::BadValue => Value::Null,
    }
}

fn obj<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object()
        .ok_or_else(|| format!("sdl: {path}: expected a mapping"))
}

fn get<'a>(m: &'a Map<String, Value>, key: &str, path: &str) -> Result<&'a Value, String> {
    match m.get(key) {
        Some(Value::Null) | None => Err(format!("sdl: {path}.{key}: required")),
        Some(v) => Ok(v),
    }
}

fn non_empty_map<'a>(
    m: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<&'a Map<String, Value>, String> {
    let inner = obj(get(m, key, path)?, &format!("{path}.{key}"))?;
    if inner.is_empty() {
        return Err(format!("sdl: {path}.{key}: must not be empty"));
    }
    Ok(inner)
}

fn port(v: &Value, path: &str) -> Result<u16, String> {
    v.as_u64()
        .filter(|p| (1..=65535).contains(p))
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| format!("sdl: {path}: must be a port number 1-65535"))
}

/// Parses and validates SDL text.
pub fn parse(text: &str) -> Result<Sdl, String> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| format!("sdl: invalid YAML: {e}"))?;
    let [doc] = docs.as_slice() else {
        return Err("sdl: expected exactly one YAML document".into());
    };
    let root_v = to_json(doc);
    let root = obj(&root_v, "(root)")?;

    match root.get("version") {
        Some(Value::String(v)) if v == "2.0" || v == "2.1" => {}
        Some(Value::String(v)) => return Err(format!("sdl: unsupported version \"{v}\"")),
        Some(_) => return Err("sdl: version: must be a string such as \"2.0\"".into()),
        None => return Err("sdl: version: required".into()),
    }

    let services = non_empty_map(root, "services", "(root)")?;
    let profiles = obj(get(root, "profiles", "(root)")?, "profiles")?;
    let compute = non_empty_map(profiles, "compute", "profiles")?;
    let placement = non_empty_map(profiles, "placement", "profiles")?;
    let deployment = non_empty_map(root, "deployment", "(root)")?;

    for (name, p) in compute {
        let path = format!("profiles.compute.{name}");
        let res = obj(
            get(obj(p, &path)?, "resources", &path)?,
            &format!("{path}.resources"),
        )?;
        let rpath = format!("{path}.resources");
        get(
            obj(get(res, "cpu", &rpath)?, &format!("{rpath}.cpu"))?,
            "units",
            &format!("{rpath}.cpu"),
        )?;
        get(
            obj(get(res, "memory", &rpath)?, &format!("{rpath}.memory"))?,
            "size",
            &format!("{rpath}.memory"),
        )?;
        get(res, "storage", &rpath)?;
    }
    for (name, p) in placement {
        let path = format!("profiles.placement.{name}");
        let pricing = non_empty_map(obj(p, &path)?, "pricing", &path)?;
        for (prof, price) in pricing {
            let ppath = format!("{path}.pricing.{prof}");
            let price = obj(price, &ppath)?;
            get(price, "denom", &ppath)?;
            get(price, "amount", &ppath)?;
        }
    }

    let mut out = Vec::new();
    let mut groups: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (name, s) in services {
        let path = format!("services.{name}");
        let s = obj(s, &path)?;
        let image = match get(s, "image", &path)? {
            Value::String(i) if !i.trim().is_empty() => i.clone(),
            _ => return Err(format!("sdl: {path}.image: must be a non-empty string")),
        };
        let mut env = Vec::new();
        if let Some(e) = s.get("env").filter(|e| !e.is_null()) {
            for (i, entry) in e
                .as_array()
                .ok_or_else(|| format!("sdl: {path}.env: expected a list"))?
                .iter()
                .enumerate()
            {
                match entry.as_str() {
                    Some(kv) if kv.split_once('=').is_some_and(|(k, _)| !k.is_empty()) => {
                        env.push(kv.to_string());
                    }
                    _ => return Err(format!("sdl: {path}.env[{i}]: expected KEY=VALUE")),
                }
            }
        }
        let mut ports = Vec::new();
        let expose = get(s, "expose", &path)?
            .as_array()
            .ok_or_else(|| format!("sdl: {path}.expose: expected a list"))?;
        for (i, e) in expose.iter().enumerate() {
            let epath = format!("{path}.expose[{i}]");
            let e = obj(e, &epath)?;
            ports.push(port(get(e, "port", &epath)?, &format!("{epath}.port"))?);
            if let Some(a) = e.get("as") {
                port(a, &format!("{epath}.as"))?;
            }
            if let Some(to) = e.get("to") {
                to.as_array()
                    .ok_or_else(|| format!("sdl: {epath}.to: expected a list"))?;
            }
        }

        let dpath = format!("deployment.{name}");
        let placements = obj(
            deployment
                .get(name)
                .ok_or_else(|| format!("sdl: {dpath}: service is not deployed"))?,
            &dpath,
        )?;
        let mut count = 0;
        for (pl, d) in placements {
            let ppath = format!("{dpath}.{pl}");
            let d = obj(d, &ppath)?;
            let pl_def = placement
                .get(pl)
                .ok_or_else(|| format!("sdl: {ppath}: unknown placement profile \"{pl}\""))?;
            let profile = get(d, "profile", &ppath)?
                .as_str()
                .ok_or_else(|| format!("sdl: {ppath}.profile: expected a name"))?;
            let resources = compute
                .get(profile)
                .and_then(|c| c.get("resources"))
                .ok_or_else(|| {
                    format!("sdl: {ppath}.profile: unknown compute profile \"{profile}\"")
                })?;
            let price = pl_def
                .get("pricing")
                .and_then(|p| p.get(profile))
                .ok_or_else(|| {
                    format!(
                        "sdl: {ppath}: placement \"{pl}\" has no pricing for profile \"{profile}\""
                    )
                })?;
            let n = get(d, "count", &ppath)?
                .as_u64()
                .filter(|n| *n >= 1)
                .ok_or_else(|| format!("sdl: {ppath}.count: must be a positive integer"))?;
            count += n;
            groups.entry(pl.clone()).or_default().push(json!({
                "service": name,
                "resources": resources,
                "count": n,
                "price": price,
                "attributes": pl_def.get("attributes"),
                "signedBy": pl_def.get("signedBy"),
            }));
        }
        out.push(Service {
            name: name.clone(),
            image,
            env,
            ports,
            count,
        });
    }
    for svc in deployment.keys() {
        if !services.contains_key(svc) {
            return Err(format!("sdl: deployment.{svc}: no such service"));
        }
    }
    let group_specs = groups
        .iter()
        .map(|(pl, entries)| {
            let def = placement.get(pl);
            let signed_by = def.and_then(|d| d.get("signedBy"));
            json!({
                "name": pl,
                "requirements": {
                    "signed_by": {
                        "all_of": string_list(signed_by.and_then(|s| s.get("allOf"))),
                        "any_of": string_list(signed_by.and_then(|s| s.get("anyOf"))),
                    },
                    "attributes": attribute_list(def.and_then(|d| d.get("attributes"))),
                },
                "resources": entries.iter().map(|e| json!({
                    "resource": e.get("resources"),
                    "count": e.get("count"),
                    "price": dec_coin(e.get("price").unwrap_or(&Value::Null)),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Sdl {
        services: out,
        groups: json!(groups).to_string(),
        version: hex64(root_v.to_string().as_bytes()),
        group_specs,
    })
}

#[cfg(test)]
mod tests {
    use super::parse;

    const SDL: &str = r#"
version: "2.0"
services:
  api:
    image: "127.0.0.1:5000/api:abc@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    env: [API_PORT=8080]
    expose:
      - port: 8080
        as: 80
        to: [{global: true}]
profiles:
  compute:
    api:
      resources: {cpu: {units: 0.5}, memory: {size: 256Mi}, storage: {size: 512Mi}}
  placement:
    dcloud:
      pricing: {api: {denom: uakt, amount: 1000}}
deployment:
  api:
    dcloud: {profile: api, count: 1}
"#;

    #[test]
    fn accepts_and_extracts() {
        let s = parse(SDL).expect("valid");
        assert_eq!(s.services.len(), 1);
        assert_eq!(s.services[0].ports, vec![8080]);
        assert_eq!(s.services[0].env, vec!["API_PORT=8080".to_string()]);
    }

    #[test]
    fn image_change_keeps_groups_changes_version() {
        let a = parse(SDL).expect("valid");
        let b = parse(&SDL.replace("api:abc@", "api:def@")).expect("valid");
        assert_eq!(a.groups, b.groups);
        assert_ne!(a.version, b.version);
        let c = parse(&SDL.replace("units: 0.5", "units: 1")).expect("valid");
        assert_ne!(a.groups, c.groups);
    }

    #[test]
    fn group_specs_have_the_chains_shape() {
        let with = SDL.replace(
            "    dcloud:\n      pricing",
            "    dcloud:\n      attributes: {tier: community, host: akash}\n      signedBy: {anyOf: [akash1x], allOf: []}\n      pricing",
        );
        let s = parse(&with).expect("valid");
        let g = &s.group_specs[0];
        assert_eq!(g["name"], "dcloud");
        assert_eq!(g["resources"][0]["price"]["denom"], "uakt");
        assert_eq!(
            g["resources"][0]["price"]["amount"],
            "1000.000000000000000000"
        );
        assert_eq!(g["requirements"]["attributes"][0]["key"], "host", "sorted");
        assert_eq!(g["requirements"]["signed_by"]["any_of"][0], "akash1x");
        assert_ne!(
            parse(SDL).expect("valid").groups,
            s.groups,
            "placement is part of the groups"
        );
    }

    #[test]
    fn rejects_bad_sdl() {
        for (from, to) in [
            ("version: \"2.0\"", "version: \"1.0\""),
            ("image: \"127", "image: \"\"\n    x: \"127"),
            ("profile: api,", "profile: nope,"),
            ("count: 1", "count: 0"),
            ("- port: 8080", "- as: 8080"),
        ] {
            let bad = SDL.replacen(from, to, 1);
            assert!(parse(&bad).is_err(), "{to}");
        }
        assert!(parse("services: [").is_err());
    }
}
