//! Routes: which handler answers a method and path, and how its result becomes a reply
//! (v3 answers `application/json`, v2 `application/vnd.kafka.v2+json`).

use std::rc::Rc;

use hyper::body::Incoming;
use hyper::{Method, Request};
use riptide_client::OffsetSpec;
use serde_json::{json, Value};

use super::error::RestError;
use super::http::{
    error_reply, json_reply, no_content, Reply, Req, V2_BINARY, V2_EMBEDDED_JSON, V2_JSON, V3_JSON,
};
use super::state::State;
use super::{consumers, groups, produce, share_groups, topics};

/// The OpenAPI document of this API (the repository's copy, built in).
const OPENAPI: &str = include_str!("../../docs/openapi.json");

/// v2 request bodies may use any of REST Proxy's v2 types or plain JSON.
const V2_TYPES: &[&str] = &[
    V2_JSON,
    V3_JSON,
    V2_BINARY,
    V2_EMBEDDED_JSON,
    "application/vnd.kafka+json",
    "application/octet-stream",
];

enum Out {
    Json(u16, Value),
    /// 200 with a content type of its own (v2 records in their embedded format).
    Typed(&'static str, Value),
    Empty,
}

pub async fn handle(state: &Rc<State>, req: Request<Incoming>) -> Reply {
    let req = Req::new(req);
    // The root and the OpenAPI document are plain JSON; the rest of v2 has its own type.
    let v2 = req.path.first().is_some_and(|s| s != "v3" && s != "openapi.json");
    let ct = if v2 { V2_JSON } else { V3_JSON };
    let path: Vec<String> = req.path.clone();
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    // Routes that stream or need the request itself.
    match (&req.method, p.as_slice()) {
        (&Method::POST, ["v3", "clusters", c, "topics", t, "records"]) => {
            return match state.check_cluster(c).await {
                Ok(c) => produce::v3(state, req, c, t.to_string()).await,
                Err(e) => error_reply(&e, V3_JSON),
            };
        }
        (&Method::POST, ["topics", t]) => return produce::v2(state, req, t.to_string()).await,
        _ => {}
    }
    match route(state, req, &p).await {
        Ok(Out::Json(status, v)) => json_reply(status, ct, &v),
        Ok(Out::Typed(t, v)) => json_reply(200, t, &v),
        Ok(Out::Empty) => no_content(),
        Err(e) => error_reply(&e, ct),
    }
}

async fn route(state: &Rc<State>, req: Req, p: &[&str]) -> Result<Out, RestError> {
    use Method as M;
    let ok = |v: Value| Ok(Out::Json(200, v));
    let m = req.method.clone();
    let has_body_method = matches!(m, M::POST | M::PUT | M::PATCH);
    if has_body_method {
        let allowed: &[&str] = if p.first() == Some(&"v3") { &[V3_JSON] } else { V2_TYPES };
        req.check_content_type(allowed)?;
    }
    let s = state.as_ref();
    match (m, p) {
        (M::GET, []) => ok(json!({})),
        (M::GET, ["openapi.json"]) => {
            let v: Value = serde_json::from_str(OPENAPI).unwrap_or(Value::Null);
            ok(v)
        }
        // ---- v3 ----
        (M::GET, ["v3", "clusters"]) => ok(topics::clusters(s, &req).await?),
        (M::GET, ["v3", "clusters", c]) => ok(topics::cluster(s, &req, c).await?),
        (M::GET, ["v3", "clusters", c, "brokers"]) => ok(topics::brokers(s, &req, c).await?),
        (M::GET, ["v3", "clusters", c, "brokers", b]) => ok(topics::broker(s, &req, c, b).await?),
        (M::GET, ["v3", "clusters", c, "topics"]) => ok(topics::topics(s, &req, c).await?),
        (M::POST, ["v3", "clusters", c, "topics"]) => {
            let (_, v) = topics::create_topic(s, req, c).await?;
            Ok(Out::Json(201, v))
        }
        (M::GET, ["v3", "clusters", c, "topics", t]) => ok(topics::topic(s, &req, c, t).await?),
        (M::DELETE, ["v3", "clusters", c, "topics", t]) => {
            topics::delete_topic(s, c, t).await?;
            Ok(Out::Empty)
        }
        (M::GET, ["v3", "clusters", c, "topics", t, "configs"]) => ok(topics::configs(s, &req, c, t).await?),
        (M::POST, ["v3", "clusters", c, "topics", t, "configs:alter"]) => {
            topics::alter_configs(s, req, c, t).await?;
            Ok(Out::Empty)
        }
        (M::GET, ["v3", "clusters", c, "topics", t, "configs", n]) => {
            ok(topics::config(s, &req, c, t, n).await?)
        }
        (M::PUT, ["v3", "clusters", c, "topics", t, "configs", n]) => {
            topics::set_config(s, req, c, t, n).await?;
            Ok(Out::Empty)
        }
        (M::DELETE, ["v3", "clusters", c, "topics", t, "configs", n]) => {
            topics::reset_config(s, c, t, n).await?;
            Ok(Out::Empty)
        }
        (M::GET, ["v3", "clusters", c, "topics", t, "partitions"]) => {
            ok(topics::partitions(s, &req, c, t).await?)
        }
        (M::GET, ["v3", "clusters", c, "topics", t, "partitions", n]) => {
            ok(topics::partition(s, &req, c, t, n).await?)
        }
        (M::GET, ["v3", "clusters", c, "topics", t, "partitions", n, "replicas"]) => {
            ok(topics::replicas(s, &req, c, t, n).await?)
        }
        (M::GET, ["v3", "clusters", c, "consumer-groups"]) => ok(groups::groups(s, &req, c).await?),
        (M::GET, ["v3", "clusters", c, "share-groups"]) => ok(share_groups::groups(s, &req, c).await?),
        (M::GET, ["v3", "clusters", c, "share-groups", g]) => ok(share_groups::group(s, &req, c, g).await?),
        (M::GET, ["v3", "clusters", c, "consumer-groups", g]) => ok(groups::group(s, &req, c, g).await?),
        (M::GET, ["v3", "clusters", c, "consumer-groups", g, "consumers"]) => {
            ok(groups::consumers(s, &req, c, g).await?)
        }
        (M::GET, ["v3", "clusters", c, "consumer-groups", g, "consumers", id]) => {
            ok(groups::consumer(s, &req, c, g, id).await?)
        }
        (M::GET, ["v3", "clusters", c, "consumer-groups", g, "consumers", id, "assignments"]) => {
            ok(groups::assignments(s, &req, c, g, id).await?)
        }
        (M::GET, ["v3", "clusters", c, "consumer-groups", g, "lags"]) => {
            ok(groups::lags(s, &req, c, g).await?)
        }
        (M::GET, ["v3", "clusters", c, "consumer-groups", g, "lag-summary"]) => {
            ok(groups::lag_summary(s, &req, c, g).await?)
        }
        // ---- v2 ----
        (M::GET, ["topics"]) => ok(topics::v2_topics(s).await?),
        (M::GET, ["topics", t]) => ok(topics::v2_topic(s, t).await?),
        (M::GET, ["topics", t, "partitions"]) => ok(topics::v2_partitions(s, t).await?),
        (M::GET, ["topics", t, "partitions", n]) => ok(topics::v2_partition_one(s, t, n).await?),
        (M::GET, ["topics", t, "partitions", n, "offsets"]) => ok(topics::v2_offsets(s, t, n).await?),
        (M::GET, ["brokers"]) => ok(topics::v2_brokers(s).await?),
        (M::POST, ["consumers", g]) => ok(consumers::create(s, req, g).await?),
        (m, ["consumers", g, "instances", name, rest @ ..]) => {
            let i = consumers::instance(s, g, name)?;
            match (m, rest) {
                (M::DELETE, []) => {
                    consumers::delete(s, g, name).await?;
                    Ok(Out::Empty)
                }
                (M::POST, ["subscription"]) => {
                    consumers::subscribe(s, req, &i).await?;
                    Ok(Out::Empty)
                }
                (M::GET, ["subscription"]) => ok(consumers::subscription(&i).await),
                (M::DELETE, ["subscription"]) => {
                    consumers::unsubscribe(&i).await;
                    Ok(Out::Empty)
                }
                (M::POST, ["assignments"]) => {
                    consumers::assign(s, req, &i).await?;
                    Ok(Out::Empty)
                }
                (M::GET, ["assignments"]) => ok(consumers::assignments(&i).await),
                (M::POST, ["offsets"]) => {
                    consumers::commit(s, req, &i).await?;
                    ok(json!({}))
                }
                (M::GET, ["offsets"]) => ok(consumers::committed(s, req, &i).await?),
                (M::POST, ["positions"]) => {
                    consumers::seek(s, req, &i).await?;
                    Ok(Out::Empty)
                }
                (M::POST, ["positions", "beginning"]) => {
                    consumers::seek_to(s, req, &i, OffsetSpec::Earliest).await?;
                    Ok(Out::Empty)
                }
                (M::POST, ["positions", "end"]) => {
                    consumers::seek_to(s, req, &i, OffsetSpec::Latest).await?;
                    Ok(Out::Empty)
                }
                (M::GET, ["records"]) => {
                    Ok(Out::Typed(i.format().content_type(), consumers::poll(s, &req, &i).await?))
                }
                _ => Err(not_routed(p)),
            }
        }
        (_, p) => Err(not_routed(p)),
    }
}

/// 405 with the path's methods when the path exists, else 404.
fn not_routed(p: &[&str]) -> RestError {
    match allowed(p) {
        Some(methods) => RestError::MethodNotAllowed(methods),
        None => RestError::NoRoute { status: 404 },
    }
}

/// The methods a path answers (the `Allow` header of a 405), `None` for no such path.
fn allowed(p: &[&str]) -> Option<&'static str> {
    Some(match p {
        [] | ["openapi.json"] => "GET",
        ["v3", "clusters"] | ["v3", "clusters", _] => "GET",
        ["v3", "clusters", _, "brokers" | "consumer-groups" | "share-groups"] => "GET",
        ["v3", "clusters", _, "brokers" | "consumer-groups" | "share-groups", _] => "GET",
        ["v3", "clusters", _, "topics"] => "GET, POST",
        ["v3", "clusters", _, "topics", _] => "GET, DELETE",
        ["v3", "clusters", _, "topics", _, "configs" | "partitions"] => "GET",
        ["v3", "clusters", _, "topics", _, "records" | "configs:alter"] => "POST",
        ["v3", "clusters", _, "topics", _, "configs", _] => "GET, PUT, DELETE",
        ["v3", "clusters", _, "topics", _, "partitions", _] => "GET",
        ["v3", "clusters", _, "topics", _, "partitions", _, "replicas"] => "GET",
        ["v3", "clusters", _, "consumer-groups", _, "consumers" | "lags" | "lag-summary"] => "GET",
        ["v3", "clusters", _, "consumer-groups", _, "consumers", _] => "GET",
        ["v3", "clusters", _, "consumer-groups", _, "consumers", _, "assignments"] => "GET",
        ["topics"] => "GET",
        ["topics", _] => "GET, POST",
        ["topics", _, "partitions"] | ["topics", _, "partitions", _] => "GET",
        ["topics", _, "partitions", _, "offsets"] => "GET",
        ["brokers"] => "GET",
        ["consumers", _] => "POST",
        ["consumers", _, "instances", _, rest @ ..] => match rest {
            [] => "DELETE",
            ["subscription"] => "GET, POST, DELETE",
            ["assignments" | "offsets"] => "GET, POST",
            ["positions"] | ["positions", "beginning" | "end"] => "POST",
            ["records"] => "GET",
            _ => return None,
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::allowed;

    #[test]
    fn every_path_shape_names_its_methods() {
        assert_eq!(allowed(&["v3", "clusters", "c", "topics"]), Some("GET, POST"));
        assert_eq!(allowed(&["v3", "clusters", "c", "topics", "t", "records"]), Some("POST"));
        assert_eq!(allowed(&["consumers", "g", "instances", "i", "subscription"]), Some("GET, POST, DELETE"));
        assert_eq!(allowed(&["consumers", "g", "instances", "i", "nope"]), None);
        assert_eq!(allowed(&["v4"]), None);
    }
}
