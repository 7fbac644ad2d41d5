//! The backend `bench/compare.sh` puts behind every proxy: `gantry.test.Echo` over
//! h2c on one thread, doing as little as a gRPC server can, so the proxies'
//! costs stand out.
//!
//! Unlike the demo backend (`examples/backend.rs`), it copies no request headers
//! into its replies: that made each proxy's cost depend on how many headers it
//! adds (X-Forwarded-*), not on how it forwards. Unary calls are answered with
//! the payload; bidi streams echo each message as it comes.
//!
//! ```text
//! cargo run --release --example bench_backend -- --addr 127.0.0.1:50071
//! ```

use std::net::SocketAddr;
use std::pin::Pin;
use std::process::ExitCode;

use clap::Parser;
use futures_util::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

mod common;

use common::echo::echo_server::{Echo, EchoServer};
use common::echo::{EchoReply, EchoRequest, StreamRequest};

#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long)]
    addr: SocketAddr,
    /// Name put in every answer.
    #[arg(long, default_value = "bench")]
    name: String,
}

struct Bench {
    name: String,
}

type Replies = Pin<Box<dyn Stream<Item = Result<EchoReply, Status>> + Send>>;

#[tonic::async_trait]
impl Echo for Bench {
    async fn unary(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        Ok(Response::new(EchoReply {
            backend: self.name.clone(),
            payload: request.into_inner().payload,
            count: 1,
            ..EchoReply::default()
        }))
    }

    type ServerStreamStream = Replies;

    async fn server_stream(
        &self,
        _request: Request<StreamRequest>,
    ) -> Result<Response<Replies>, Status> {
        Err(Status::unimplemented(
            "the bench backend answers Unary and Bidi",
        ))
    }

    async fn client_stream(
        &self,
        _request: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<EchoReply>, Status> {
        Err(Status::unimplemented(
            "the bench backend answers Unary and Bidi",
        ))
    }

    type BidiStream = Replies;

    async fn bidi(
        &self,
        request: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<Replies>, Status> {
        let name = self.name.clone();
        let replies = request.into_inner().map(move |m| {
            m.map(|req| EchoReply {
                backend: name.clone(),
                payload: req.payload,
                ..EchoReply::default()
            })
        });
        Ok(Response::new(Box::pin(replies)))
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench_backend: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let service = EchoServer::new(Bench { name: args.name })
        .max_decoding_message_size(common::echo_svc::MAX_MESSAGE_SIZE);
    let served = runtime.block_on(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve(args.addr),
    );
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_backend: cannot serve on {}: {e}", args.addr);
            ExitCode::FAILURE
        }
    }
}
