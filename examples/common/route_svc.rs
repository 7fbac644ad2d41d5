//! The `routeguide.RouteGuide` demo service (see `proto/routeguide.proto`):
//! a tiny map of made-up landmarks, answered by a named backend.
//!
//! Shared by `examples/common` and `tests/support/backend.rs`: it reaches the
//! generated code as `super::routeguide` and the counters as `super::stats`.

use std::sync::Arc;
use std::time::Instant;

use futures_util::stream;
use tonic::{Request, Response, Status, Streaming};

use super::routeguide::route_guide_server::{RouteGuide, RouteGuideServer};
use super::routeguide::{Feature, Point, Rectangle, RouteNote, RouteSummary};
use super::stats::{Stats, Tracked};

/// Largest message the demo service accepts or sends (16 MiB).
const MAX_MESSAGE_SIZE: usize = 16 << 20;

/// The landmarks every backend knows: name, latitude and longitude in E7.
pub const LANDMARKS: &[(&str, i32, i32)] = &[
    ("Gantry Crane No. 3, North Quay", 515_051_200, -1_023_400),
    ("Old Customs House", 515_062_500, -1_011_800),
    ("Signal Tower", 515_074_900, -995_600),
    ("Dry Dock Steps", 515_040_300, -987_300),
    ("Rope Walk Market", 515_088_100, -1_042_700),
    ("Lock Keeper's Cottage", 515_101_600, -1_060_200),
    ("Tidal Basin Footbridge", 515_033_800, -1_051_900),
    ("Sailmakers' Yard", 515_019_400, -1_002_500),
    ("Container Stack East", 515_012_700, -970_100),
    ("Harbour Master's Office", 515_067_300, -1_035_000),
    ("Pilot Boat Jetty", 515_045_900, -1_074_400),
    ("Swing Bridge", 515_079_200, -1_018_800),
    ("Coal Wharf Chimney", 515_094_600, -981_200),
    ("Ferry Terminal", 515_028_100, -1_029_600),
    ("Lightship Mooring", 515_006_500, -1_046_300),
    ("Grain Silo Row", 515_113_800, -1_005_700),
    ("Chandlery Lane", 515_056_400, -1_063_900),
    ("Breakwater Beacon", 514_995_200, -1_015_500),
    ("Canal Junction", 515_120_300, -1_038_100),
    ("Fish Market Hall", 515_049_700, -1_008_400),
];

/// The landmarks as protobuf features, without a backend name.
pub fn landmarks() -> Vec<Feature> {
    LANDMARKS
        .iter()
        .map(|&(name, latitude, longitude)| Feature {
            name: name.to_owned(),
            location: Some(Point {
                latitude,
                longitude,
            }),
            backend: String::new(),
        })
        .collect()
}

/// Great-circle distance between two points, in metres.
pub fn distance_m(a: &Point, b: &Point) -> f64 {
    const EARTH_RADIUS_M: f64 = 6_371_000.0;
    let rad = |e7: i32| (f64::from(e7) / 1e7).to_radians();
    let (lat1, lat2) = (rad(a.latitude), rad(b.latitude));
    let dlat = lat2 - lat1;
    let dlon = rad(b.longitude) - rad(a.longitude);
    let h = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().asin()
}

/// Whether `p` lies in the rectangle spanned by `r`'s corners (inclusive).
fn inside(r: &Rectangle, p: &Point) -> bool {
    let lo = r.lo.unwrap_or_default();
    let hi = r.hi.unwrap_or_default();
    let (lat_min, lat_max) = (lo.latitude.min(hi.latitude), lo.latitude.max(hi.latitude));
    let (lon_min, lon_max) = (
        lo.longitude.min(hi.longitude),
        lo.longitude.max(hi.longitude),
    );
    (lat_min..=lat_max).contains(&p.latitude) && (lon_min..=lon_max).contains(&p.longitude)
}

/// The RouteGuide service of one named backend.
#[derive(Clone, Debug)]
pub struct RouteGuideService {
    name: Arc<str>,
    stats: Arc<Stats>,
    features: Arc<[Feature]>,
}

impl RouteGuideService {
    /// A service answering as `name` and counting into `stats`.
    pub fn new(name: &str, stats: Arc<Stats>) -> Self {
        let features = landmarks()
            .into_iter()
            .map(|f| Feature {
                backend: name.to_owned(),
                ..f
            })
            .collect();
        RouteGuideService {
            name: name.into(),
            stats,
            features,
        }
    }

    /// The service wrapped for tonic, with the 16 MiB message limits.
    pub fn into_server(self) -> RouteGuideServer<Self> {
        RouteGuideServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE)
    }

    fn feature_at(&self, p: &Point) -> Option<&Feature> {
        self.features
            .iter()
            .find(|f| f.location.as_ref() == Some(p))
    }
}

#[tonic::async_trait]
impl RouteGuide for RouteGuideService {
    async fn get_feature(&self, request: Request<Point>) -> Result<Response<Feature>, Status> {
        self.stats.count_call();
        let point = request.into_inner();
        let feature = self.feature_at(&point).cloned().unwrap_or_else(|| Feature {
            name: String::new(),
            location: Some(point),
            backend: self.name.to_string(),
        });
        Ok(Response::new(feature))
    }

    type ListFeaturesStream = Tracked<Feature>;

    async fn list_features(
        &self,
        request: Request<Rectangle>,
    ) -> Result<Response<Self::ListFeaturesStream>, Status> {
        self.stats.count_call();
        let rect = request.into_inner();
        let found: Vec<Result<Feature, Status>> = self
            .features
            .iter()
            .filter(|f| f.location.as_ref().is_some_and(|p| inside(&rect, p)))
            .cloned()
            .map(Ok)
            .collect();
        Ok(Response::new(Tracked::new(
            self.stats.clone(),
            stream::iter(found),
        )))
    }

    async fn record_route(
        &self,
        request: Request<Streaming<Point>>,
    ) -> Result<Response<RouteSummary>, Status> {
        self.stats.count_call();
        let mut points = request.into_inner();
        let mut summary = RouteSummary {
            backend: self.name.to_string(),
            ..RouteSummary::default()
        };
        let mut distance = 0.0;
        let mut previous: Option<Point> = None;
        let mut started: Option<Instant> = None;
        while let Some(point) = points.message().await? {
            started.get_or_insert_with(Instant::now);
            summary.point_count += 1;
            if self.feature_at(&point).is_some() {
                summary.feature_count += 1;
            }
            if let Some(prev) = &previous {
                distance += distance_m(prev, &point);
            }
            previous = Some(point);
        }
        summary.distance = distance.round().min(f64::from(i32::MAX)) as i32;
        summary.elapsed_time = started.map_or(0, |t| {
            i32::try_from(t.elapsed().as_secs()).unwrap_or(i32::MAX)
        });
        Ok(Response::new(summary))
    }

    type RouteChatStream = Tracked<RouteNote>;

    async fn route_chat(
        &self,
        request: Request<Streaming<RouteNote>>,
    ) -> Result<Response<Self::RouteChatStream>, Status> {
        self.stats.count_call();
        let name = self.name.clone();
        let notes = stream::unfold(Some(request.into_inner()), move |inbound| {
            let name = name.clone();
            async move {
                let mut inbound = inbound?;
                match inbound.message().await {
                    Ok(Some(note)) => {
                        let reply = RouteNote {
                            backend: name.to_string(),
                            ..note
                        };
                        Some((Ok(reply), Some(inbound)))
                    }
                    Ok(None) => None,
                    Err(status) => Some((Err(status), None)),
                }
            }
        });
        Ok(Response::new(Tracked::new(self.stats.clone(), notes)))
    }
}
