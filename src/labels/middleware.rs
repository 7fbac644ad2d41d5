//! Traefik's middleware vocabulary: `<prefix>.http.middlewares.<name>.<type>.<option…>`
//! labels read into one definition per name, its type and its options, each option
//! checked against what Traefik v3 documents for that type.
//!
//! Types and options match case-insensitively, as Traefik's label decoder matches
//! them; names are taken as written. A definition is only read here: whether gantry
//! applies its type is decided where routers that use it are resolved, and a router
//! never runs without a middleware it names (fail closed).

use std::collections::BTreeMap;

use super::parse::Problem;

/// How an option's key goes on after the option's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// The option is the whole key: `stripprefix.prefixes`.
    Plain,
    /// One more segment names an entry of a map: `headers.customrequestheaders.X-A`.
    Map,
}

/// One option a middleware type takes: its key below the type, in lower case (dotted
/// for nested options, as `sourcecriterion.ipstrategy.depth`).
#[derive(Debug, Clone, Copy)]
struct Opt(&'static str, Shape);

const fn plain(name: &'static str) -> Opt {
    Opt(name, Shape::Plain)
}

const fn map(name: &'static str) -> Opt {
    Opt(name, Shape::Map)
}

/// What gantry does with a type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Support {
    /// Read and checked; not applied to calls yet, so routers that use it are disabled.
    Pending,
    /// Refused, for this reason.
    Refused(&'static str),
}

/// A middleware type: its name as Traefik spells it, and its options.
#[derive(Debug)]
pub(crate) struct Kind {
    pub name: &'static str,
    options: &'static [Opt],
    pub support: Support,
}

/// Options the source criterion of `ratelimit` and `inflightreq` takes.
const SOURCE_CRITERION: [Opt; 5] = [
    plain("sourcecriterion.ipstrategy.depth"),
    plain("sourcecriterion.ipstrategy.excludedips"),
    plain("sourcecriterion.ipstrategy.ipv6subnet"),
    plain("sourcecriterion.requestheadername"),
    plain("sourcecriterion.requesthost"),
];

/// `ratelimit` options: its own, the source criterion and the shared (Redis) store.
const RATE_LIMIT: [Opt; 22] = [
    plain("average"),
    plain("period"),
    plain("burst"),
    SOURCE_CRITERION[0],
    SOURCE_CRITERION[1],
    SOURCE_CRITERION[2],
    SOURCE_CRITERION[3],
    SOURCE_CRITERION[4],
    plain("redis.endpoints"),
    plain("redis.username"),
    plain("redis.password"),
    plain("redis.db"),
    plain("redis.poolsize"),
    plain("redis.minidleconns"),
    plain("redis.maxactiveconns"),
    plain("redis.readtimeout"),
    plain("redis.writetimeout"),
    plain("redis.dialtimeout"),
    plain("redis.tls.ca"),
    plain("redis.tls.cert"),
    plain("redis.tls.key"),
    plain("redis.tls.insecureskipverify"),
];

const IP_LIST: [Opt; 5] = [
    plain("sourcerange"),
    plain("ipstrategy.depth"),
    plain("ipstrategy.excludedips"),
    plain("ipstrategy.ipv6subnet"),
    plain("rejectstatuscode"),
];

const OWN_ISSUE: &str = "it comes with its own piece of work and is not applied yet";

/// Every HTTP middleware type of Traefik v3 (and v2's `ipwhitelist`).
pub(crate) const KINDS: &[Kind] = &[
    Kind {
        name: "addPrefix",
        options: &[plain("prefix")],
        support: Support::Pending,
    },
    Kind {
        name: "basicAuth",
        options: &[
            plain("users"),
            plain("usersfile"),
            plain("realm"),
            plain("removeheader"),
            plain("headerfield"),
        ],
        support: Support::Pending,
    },
    Kind {
        name: "buffering",
        options: &[
            plain("maxrequestbodybytes"),
            plain("memrequestbodybytes"),
            plain("maxresponsebodybytes"),
            plain("memresponsebodybytes"),
            plain("retryexpression"),
        ],
        support: Support::Pending,
    },
    Kind {
        name: "chain",
        options: &[plain("middlewares")],
        support: Support::Pending,
    },
    Kind {
        name: "circuitBreaker",
        options: &[
            plain("expression"),
            plain("checkperiod"),
            plain("fallbackduration"),
            plain("recoveryduration"),
            plain("responsecode"),
        ],
        support: Support::Pending,
    },
    Kind {
        name: "compress",
        options: &[
            plain("excludedcontenttypes"),
            plain("includedcontenttypes"),
            plain("minresponsebodybytes"),
            plain("defaultencoding"),
            plain("encodings"),
        ],
        support: Support::Pending,
    },
    Kind {
        name: "contentType",
        options: &[plain("autodetect")],
        support: Support::Pending,
    },
    Kind {
        name: "digestAuth",
        options: &[
            plain("users"),
            plain("usersfile"),
            plain("realm"),
            plain("removeheader"),
            plain("headerfield"),
        ],
        support: Support::Refused(
            "digest authentication sends a nonce challenge no gRPC client answers, and \
             its MD5 credentials are weaker than basicauth over TLS: use basicauth or \
             forwardauth",
        ),
    },
    Kind {
        name: "errors",
        options: &[
            plain("status"),
            plain("service"),
            plain("query"),
            map("statusrewrites"),
        ],
        support: Support::Pending,
    },
    Kind {
        name: "forwardAuth",
        options: &[
            plain("address"),
            plain("tls.ca"),
            plain("tls.cert"),
            plain("tls.key"),
            plain("tls.insecureskipverify"),
            plain("tls.caoptional"),
            plain("trustforwardheader"),
            plain("authresponseheaders"),
            plain("authresponseheadersregex"),
            plain("authrequestheaders"),
            plain("addauthcookiestoresponse"),
            plain("headerfield"),
            plain("forwardbody"),
            plain("maxbodysize"),
            plain("preservelocationheader"),
            plain("preserverequestmethod"),
        ],
        support: Support::Pending,
    },
    Kind {
        name: "grpcWeb",
        options: &[plain("alloworigins")],
        support: Support::Refused(OWN_ISSUE),
    },
    Kind {
        name: "headers",
        options: &[
            map("customrequestheaders"),
            map("customresponseheaders"),
            plain("accesscontrolallowcredentials"),
            plain("accesscontrolallowheaders"),
            plain("accesscontrolallowmethods"),
            plain("accesscontrolalloworiginlist"),
            plain("accesscontrolalloworiginlistregex"),
            plain("accesscontrolexposeheaders"),
            plain("accesscontrolmaxage"),
            plain("addvaryheader"),
            plain("allowedhosts"),
            plain("hostsproxyheaders"),
            map("sslproxyheaders"),
            plain("stsseconds"),
            plain("stsincludesubdomains"),
            plain("stspreload"),
            plain("forcestsheader"),
            plain("framedeny"),
            plain("customframeoptionsvalue"),
            plain("contenttypenosniff"),
            plain("browserxssfilter"),
            plain("custombrowserxssvalue"),
            plain("contentsecuritypolicy"),
            plain("contentsecuritypolicyreportonly"),
            plain("publickey"),
            plain("referrerpolicy"),
            plain("permissionspolicy"),
            plain("isdevelopment"),
        ],
        support: Support::Pending,
    },
    Kind {
        name: "inFlightReq",
        options: &[
            plain("amount"),
            SOURCE_CRITERION[0],
            SOURCE_CRITERION[1],
            SOURCE_CRITERION[2],
            SOURCE_CRITERION[3],
            SOURCE_CRITERION[4],
        ],
        support: Support::Pending,
    },
    Kind {
        name: "ipAllowList",
        options: &IP_LIST,
        support: Support::Pending,
    },
    Kind {
        name: "ipWhiteList",
        options: &IP_LIST,
        support: Support::Pending,
    },
    Kind {
        name: "passTLSClientCert",
        options: &[
            plain("pem"),
            plain("info.notafter"),
            plain("info.notbefore"),
            plain("info.sans"),
            plain("info.serialnumber"),
            plain("info.subject.commonname"),
            plain("info.subject.country"),
            plain("info.subject.domaincomponent"),
            plain("info.subject.locality"),
            plain("info.subject.organization"),
            plain("info.subject.organizationalunit"),
            plain("info.subject.province"),
            plain("info.subject.serialnumber"),
            plain("info.issuer.commonname"),
            plain("info.issuer.country"),
            plain("info.issuer.domaincomponent"),
            plain("info.issuer.locality"),
            plain("info.issuer.organization"),
            plain("info.issuer.province"),
            plain("info.issuer.serialnumber"),
        ],
        support: Support::Refused(OWN_ISSUE),
    },
    Kind {
        name: "rateLimit",
        options: &RATE_LIMIT,
        support: Support::Pending,
    },
    Kind {
        name: "redirectRegex",
        options: &[plain("regex"), plain("replacement"), plain("permanent")],
        support: Support::Pending,
    },
    Kind {
        name: "redirectScheme",
        options: &[plain("scheme"), plain("port"), plain("permanent")],
        support: Support::Pending,
    },
    Kind {
        name: "replacePath",
        options: &[plain("path")],
        support: Support::Pending,
    },
    Kind {
        name: "replacePathRegex",
        options: &[plain("regex"), plain("replacement")],
        support: Support::Pending,
    },
    Kind {
        name: "retry",
        options: &[
            plain("attempts"),
            plain("initialinterval"),
            plain("status"),
            plain("disableretryonnetworkerror"),
            plain("retrynonidempotentmethod"),
            plain("timeout"),
            plain("maxrequestbodybytes"),
        ],
        support: Support::Pending,
    },
    Kind {
        name: "stripPrefix",
        options: &[plain("prefixes"), plain("forceslash")],
        support: Support::Pending,
    },
    Kind {
        name: "stripPrefixRegex",
        options: &[plain("regex")],
        support: Support::Pending,
    },
];

/// The type named `name` (any case).
pub(crate) fn kind(name: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.name.eq_ignore_ascii_case(name))
}

impl Opt {
    /// Whether `key` (lower case, below the type, no empty segment) is this option: a
    /// map takes one or more segments more, its entry's name (which may hold dots).
    fn matches(&self, key: &[&str]) -> bool {
        let parts = self.0.split('.').count();
        match self.1 {
            Shape::Plain => key.len() == parts && key.join(".") == self.0,
            Shape::Map => key.len() > parts && key[..parts].join(".") == self.0,
        }
    }
}

/// The option of `kind` that `key` (lower case, below the type) is, if any.
fn option_of(kind: &Kind, key: &[&str]) -> Option<Opt> {
    if key.iter().any(|s| s.is_empty()) {
        return None;
    }
    kind.options.iter().copied().find(|o| o.matches(key))
}

/// One option as written: the label it came from and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Written {
    pub label: String,
    pub value: String,
}

/// What a task's labels say about one middleware.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MiddlewareLabels {
    /// The type, and the first label that named it.
    pub kind: Option<(&'static str, String)>,
    /// Options by key below the type: lower case, but a map entry's own name (a
    /// header's) as written, as in `customrequestheaders.X-Request-Id`.
    pub options: BTreeMap<String, Written>,
    /// Labels that break the middleware: it is not used, and nor are its routers.
    pub problems: Vec<Problem>,
}

impl MiddlewareLabels {
    /// One `<prefix>.http.middlewares.<name>.<type>.<option…>` label; `rest` is what
    /// follows the name, as written.
    pub(crate) fn add(&mut self, key: &str, rest: &[&str], value: &str) {
        let Some((type_name, option)) = rest.split_first() else {
            self.problems.push(Problem::at(
                key,
                "missing middleware type: expected \
                 <prefix>.http.middlewares.<name>.<type>.<option>=<value>",
            ));
            return;
        };
        let Some(kind) = kind(type_name) else {
            self.problems.push(Problem::at(
                key,
                format!(
                    "unknown middleware type {type_name:?} (Traefik's types: {})",
                    KINDS.iter().map(|k| k.name).collect::<Vec<_>>().join(", ")
                ),
            ));
            return;
        };
        match &self.kind {
            Some((first, label)) if *first != kind.name => {
                self.problems.push(Problem::at(
                    key,
                    format!(
                        "a middleware has one type: this label says {}, label {label:?} \
                         says {first}",
                        kind.name
                    ),
                ));
                return;
            }
            Some(_) => {}
            None => self.kind = Some((kind.name, key.to_string())),
        }
        if option.is_empty() {
            // `<name>.<type>` alone declares a type that needs no options (e.g. a
            // `contentType` left at its defaults); Traefik takes an empty value there.
            return;
        }
        let lower: Vec<String> = option.iter().map(|s| s.to_ascii_lowercase()).collect();
        let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
        let Some(opt) = option_of(kind, &lower) else {
            self.problems.push(Problem::at(
                key,
                format!(
                    "unknown option {:?} of middleware type {} (its options: {})",
                    option.join("."),
                    kind.name,
                    options_list(kind)
                ),
            ));
            return;
        };
        // A map entry keeps its own name as written (header names are
        // case-insensitive, but what is sent should be what was asked for).
        let path = match opt.1 {
            Shape::Plain => opt.0.to_string(),
            Shape::Map => {
                let parts = opt.0.split('.').count();
                format!("{}.{}", opt.0, option[parts..].join("."))
            }
        };
        if let Some(first) = self.options.get(&path) {
            self.problems.push(Problem::at(
                key,
                format!("set twice: also set by label {:?}", first.label),
            ));
            return;
        }
        self.options.insert(
            path,
            Written {
                label: key.to_string(),
                value: value.to_string(),
            },
        );
    }
}

/// A type's options for messages (in lower case; a map as `customrequestheaders.<name>`).
fn options_list(kind: &Kind) -> String {
    kind.options
        .iter()
        .map(|Opt(name, shape)| match shape {
            Shape::Plain => (*name).to_string(),
            Shape::Map => format!("{name}.<name>"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A router's `middlewares` value: comma-separated names, each maybe `name@provider`,
/// in order, none empty. Duplicates are kept: Traefik applies a middleware listed
/// twice twice.
pub(crate) fn parse_list(value: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    for name in value.split(',') {
        let name = name.trim();
        if name.is_empty() {
            return Err(format!(
                "invalid middlewares {value:?}: expected comma-separated, non-empty \
                 middleware names (name or name@provider)"
            ));
        }
        if name.split('@').count() > 2 || name.starts_with('@') || name.ends_with('@') {
            return Err(format!(
                "invalid middleware reference {name:?}: expected name or name@provider"
            ));
        }
        names.push(name.to_string());
    }
    Ok(names)
}

#[cfg(test)]
mod tests;
