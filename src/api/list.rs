//! Query parameters of list endpoints: `search`, `status`, `page`, `per_page` and
//! `fields`, checked strictly (an unknown parameter or a bad value is a 400 naming
//! it, rather than an answer to a question nobody asked).

use super::fields::FieldMask;
use super::ApiError;

pub const ROUTER_STATUSES: &[&str] = &["enabled", "disabled", "warning"];
pub const MIDDLEWARE_STATUSES: &[&str] = &["enabled", "disabled"];
pub const PROVIDER_STATUSES: &[&str] = &["healthy", "failing"];
pub const ERROR_KINDS: &[&str] = &["router", "service", "middleware", "task", "provider"];

const DEFAULT_PER_PAGE: usize = 100;
const MAX_PER_PAGE: usize = 1000;

/// Parsed list parameters.
#[derive(Debug)]
pub struct ListParams {
    /// Lower-cased.
    search: Option<String>,
    status: Option<String>,
    page: usize,
    per_page: usize,
    pub fields: Option<FieldMask>,
}

impl ListParams {
    /// Parses a list's parameters; `statuses` are the values `status` may take here.
    pub fn parse(params: &[(String, String)], statuses: &[&str]) -> Result<ListParams, ApiError> {
        let mut out = ListParams {
            search: None,
            status: None,
            page: 1,
            per_page: DEFAULT_PER_PAGE,
            fields: None,
        };
        let mut fields = Vec::new();
        for (key, value) in params {
            match key.as_str() {
                "search" => {
                    let v = value.trim().to_lowercase();
                    out.search = (!v.is_empty()).then_some(v);
                }
                "status" if statuses.is_empty() => {
                    return Err(ApiError::bad_request(
                        "status: this list has no status to filter on",
                    ));
                }
                "status" => {
                    let v = value.trim().to_lowercase();
                    if !statuses.contains(&v.as_str()) {
                        return Err(ApiError::bad_request(format!(
                            "status: {value:?} is not one of {}",
                            statuses.join(", ")
                        )));
                    }
                    out.status = Some(v);
                }
                "page" => out.page = number("page", value, 1, usize::MAX)?,
                "per_page" => out.per_page = number("per_page", value, 1, MAX_PER_PAGE)?,
                "fields" => fields.push(value.as_str()),
                other => return Err(unknown(other, "search, status, page, per_page, fields")),
            }
        }
        out.fields = mask(&fields)?;
        Ok(out)
    }

    pub fn status_is(&self, status: &str) -> bool {
        self.status.as_deref().is_none_or(|s| s == status)
    }

    /// True when there is no search, or one of `texts` contains it (any case).
    pub fn search_in(&self, texts: &[&str]) -> bool {
        match &self.search {
            None => true,
            Some(q) => texts.iter().any(|t| t.to_lowercase().contains(q.as_str())),
        }
    }

    /// The requested page, and the next page number (1 when this is the last, as
    /// Traefik's `X-Next-Page`).
    pub fn page<'a, T>(&self, items: &[&'a T]) -> (Vec<&'a T>, usize) {
        let start = (self.page - 1).saturating_mul(self.per_page);
        let end = start.saturating_add(self.per_page).min(items.len());
        let page = items.get(start..end).map_or_else(Vec::new, <[_]>::to_vec);
        let next = if end < items.len() { self.page + 1 } else { 1 };
        (page, next)
    }
}

/// `fields` for single-object endpoints (no other parameter is accepted there).
pub fn only_fields(params: &[(String, String)]) -> Result<Option<FieldMask>, ApiError> {
    let mut fields = Vec::new();
    for (key, value) in params {
        match key.as_str() {
            "fields" => fields.push(value.as_str()),
            other => return Err(unknown(other, "fields")),
        }
    }
    mask(&fields)
}

fn mask(fields: &[&str]) -> Result<Option<FieldMask>, ApiError> {
    if fields.is_empty() {
        return Ok(None);
    }
    let joined = fields
        .iter()
        .map(|f| f.trim())
        .filter(|f| !f.is_empty())
        .collect::<Vec<_>>()
        .join(",");
    FieldMask::parse(&joined)
        .map(Some)
        .map_err(|e| ApiError::bad_request(format!("fields: {e}")))
}

fn number(key: &str, value: &str, min: usize, max: usize) -> Result<usize, ApiError> {
    match value.trim().parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ if max == usize::MAX => Err(ApiError::bad_request(format!(
            "{key}: {value:?} is not a whole number of at least {min}"
        ))),
        _ => Err(ApiError::bad_request(format!(
            "{key}: {value:?} is not a whole number from {min} to {max}"
        ))),
    }
}

fn unknown(key: &str, known: &str) -> ApiError {
    ApiError::bad_request(format!(
        "unknown query parameter {key:?}; this endpoint takes: {known}"
    ))
}

/// Whether an object shown as `name@provider` is the one asked for, with or without
/// its provider.
pub fn same_name(qualified: &str, asked: &str) -> bool {
    if qualified == asked {
        return true;
    }
    !asked.contains('@') && qualified.rsplit_once('@').is_some_and(|(n, _)| n == asked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn paging() {
        let items: Vec<u32> = (1..=5).collect();
        let refs: Vec<&u32> = items.iter().collect();
        let params = ListParams::parse(&p(&[("page", "2"), ("per_page", "2")]), &[]).unwrap();
        let (page, next) = params.page(&refs);
        assert_eq!(page, vec![&3, &4]);
        assert_eq!(next, 3);
        let params = ListParams::parse(&p(&[("page", "3"), ("per_page", "2")]), &[]).unwrap();
        assert_eq!(params.page(&refs), (vec![&5], 1));
        let params = ListParams::parse(&p(&[("page", "9")]), &[]).unwrap();
        assert_eq!(params.page(&refs), (vec![], 1));
    }

    #[test]
    fn bad_parameters_are_named() {
        let cases = [
            (p(&[("page", "0")]), "page"),
            (p(&[("per_page", "5000")]), "per_page"),
            (p(&[("status", "broken")]), "status"),
            (p(&[("sort", "name")]), "\"sort\""),
            (p(&[("fields", "a..b")]), "fields"),
        ];
        for (params, needle) in cases {
            let err = ListParams::parse(&params, ROUTER_STATUSES).unwrap_err();
            assert!(err.message.contains(needle), "{needle}: {}", err.message);
        }
        assert!(ListParams::parse(&p(&[("status", "enabled")]), &[]).is_err());
        assert!(only_fields(&p(&[("page", "1")])).is_err());
    }

    #[test]
    fn search_and_status() {
        let params = ListParams::parse(
            &p(&[("search", "Route"), ("status", "ENABLED")]),
            ROUTER_STATUSES,
        )
        .unwrap();
        assert!(params.search_in(&["rg", "GRPCService(`routeguide.RouteGuide`)"]));
        assert!(!params.search_in(&["echo"]));
        assert!(params.status_is("enabled"));
        assert!(!params.status_is("warning"));
    }

    #[test]
    fn names_with_and_without_provider() {
        assert!(same_name("rg@file", "rg@file"));
        assert!(same_name("rg@file", "rg"));
        assert!(!same_name("rg@file", "rg@ecs"));
        assert!(!same_name("rg@file", "r"));
    }
}
