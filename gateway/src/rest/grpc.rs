//! A generic unary gRPC call to core: the request is a `DynamicMessage`, the response is
//! decoded with the method's output descriptor. One codec serves every method, so adding an
//! RPC to the contract needs a row in the route table and nothing here.
use prost::Message;
use prost_reflect::{DynamicMessage, MessageDescriptor, MethodDescriptor};
use tonic::{
    Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    metadata::MetadataMap,
};

use crate::core_link::CoreChannel;

/// Encodes any `DynamicMessage`, decodes the messages of one descriptor.
#[derive(Clone, Debug)]
pub struct DynamicCodec {
    output: MessageDescriptor,
}

impl DynamicCodec {
    pub fn new(output: MessageDescriptor) -> Self {
        Self { output }
    }
}

#[derive(Clone, Debug)]
pub struct DynamicEncoder;

#[derive(Clone, Debug)]
pub struct DynamicDecoder(MessageDescriptor);

impl Encoder for DynamicEncoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn encode(&mut self, item: DynamicMessage, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst).map_err(|_| Status::internal("encoding the request failed"))
    }
}

impl Decoder for DynamicDecoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<DynamicMessage>, Status> {
        DynamicMessage::decode(self.0.clone(), src)
            .map(Some)
            .map_err(|_| Status::internal("core answered a message the gateway cannot decode"))
    }
}

impl Codec for DynamicCodec {
    type Encode = DynamicMessage;
    type Decode = DynamicMessage;
    type Encoder = DynamicEncoder;
    type Decoder = DynamicDecoder;

    fn encoder(&mut self) -> DynamicEncoder {
        DynamicEncoder
    }

    fn decoder(&mut self) -> DynamicDecoder {
        DynamicDecoder(self.output.clone())
    }
}

/// `/package.Service/Method`, the HTTP/2 path of a gRPC method.
pub fn grpc_path(method: &MethodDescriptor) -> String {
    format!("/{}/{}", method.parent_service().full_name(), method.name())
}

/// Calls `method` on core with `request` and `metadata`.
pub async fn unary(
    channel: CoreChannel,
    method: &MethodDescriptor,
    request: DynamicMessage,
    metadata: MetadataMap,
) -> Result<DynamicMessage, Status> {
    let path = http::uri::PathAndQuery::try_from(grpc_path(method)).map_err(|_| Status::internal("invalid gRPC method path"))?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(|_| Status::unavailable("core is not reachable"))?;
    let mut req = tonic::Request::new(request);
    *req.metadata_mut() = metadata;
    let res = grpc.unary(req, path, DynamicCodec::new(method.output())).await?;
    Ok(res.into_inner())
}
