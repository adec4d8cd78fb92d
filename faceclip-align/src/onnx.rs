//! A minimal reader of ONNX model files: the graph's nodes (op type, inputs, outputs, integer
//! attributes) and its float32 initializers. Enough to load a convolutional network's weights by
//! the nodes that use them; it does not execute anything.
//!
//! ONNX files are Protocol Buffers; the handful of message fields needed here are decoded directly
//! from the wire format, which keeps the crate free of a protobuf code generator.

use std::collections::BTreeMap;
use std::path::Path;

use faceclip_core::LoadError;

use crate::host::{HostTensor, HostWeights};

/// One node of the ONNX graph.
#[derive(Debug, Clone, Default)]
pub struct OnnxNode {
    /// Operator, e.g. `Conv`.
    pub op_type: String,
    /// Names of the input values (initializers or other nodes' outputs).
    pub inputs: Vec<String>,
    /// Names of the output values.
    pub outputs: Vec<String>,
    /// Integer and integer-list attributes (`group`, `strides`, `pads`, ...).
    pub ints: BTreeMap<String, Vec<i64>>,
}

/// The parts of an ONNX model that weight loading needs.
#[derive(Debug)]
pub struct OnnxModel {
    /// Graph nodes in file order.
    pub nodes: Vec<OnnxNode>,
    /// Float32 initializers by name, with `Identity` aliases of initializers resolved (other
    /// element types are skipped); their file is where the bytes came from (a path, or a label
    /// for bundled bytes).
    pub initializers: HostWeights,
}

impl OnnxModel {
    /// Reads an ONNX file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, LoadError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| LoadError::Io {
            file: path.to_path_buf(),
            source,
        })?;
        Self::parse(&bytes, path)
    }

    /// Parses ONNX bytes; `file` names them in errors.
    pub fn parse(bytes: &[u8], file: impl AsRef<Path>) -> Result<Self, LoadError> {
        let file = file.as_ref().to_path_buf();
        let corrupt = |reason: String| LoadError::Corrupt {
            file: file.clone(),
            reason,
        };
        let mut graph = None;
        for field in Wire::new(bytes) {
            let (number, value) = field.map_err(&corrupt)?;
            if number == 7 {
                graph = Some(value.bytes("ModelProto.graph").map_err(&corrupt)?);
            }
        }
        let graph = graph.ok_or_else(|| corrupt("not an ONNX model: no graph".into()))?;

        let mut nodes = Vec::new();
        let mut initializers = BTreeMap::new();
        for field in Wire::new(graph) {
            let (number, value) = field.map_err(&corrupt)?;
            match number {
                1 => nodes.push(
                    parse_node(value.bytes("GraphProto.node").map_err(&corrupt)?)
                        .map_err(&corrupt)?,
                ),
                5 => {
                    let bytes = value.bytes("GraphProto.initializer").map_err(&corrupt)?;
                    if let Some((name, tensor)) = parse_tensor(bytes).map_err(&corrupt)? {
                        initializers.insert(name, tensor);
                    }
                }
                _ => {}
            }
        }
        if nodes.is_empty() {
            return Err(corrupt("the ONNX graph has no nodes".into()));
        }
        // Exporters sometimes share a weight through `Identity` nodes; expose it under both names.
        for node in &nodes {
            if node.op_type == "Identity" {
                if let (Some(input), Some(output)) = (node.inputs.first(), node.outputs.first()) {
                    if let Some(tensor) = initializers.get(input).cloned() {
                        initializers.entry(output.clone()).or_insert(tensor);
                    }
                }
            }
        }
        Ok(Self {
            nodes,
            initializers: HostWeights::new(file, initializers),
        })
    }
}

fn parse_node(bytes: &[u8]) -> Result<OnnxNode, String> {
    let mut node = OnnxNode::default();
    for field in Wire::new(bytes) {
        let (number, value) = field?;
        match number {
            1 => node.inputs.push(value.string("NodeProto.input")?),
            2 => node.outputs.push(value.string("NodeProto.output")?),
            4 => node.op_type = value.string("NodeProto.op_type")?,
            5 => {
                if let Some((name, ints)) =
                    parse_int_attribute(value.bytes("NodeProto.attribute")?)?
                {
                    node.ints.insert(name, ints);
                }
            }
            _ => {}
        }
    }
    Ok(node)
}

/// An attribute's name and integer value(s); `None` for float, string and tensor attributes.
fn parse_int_attribute(bytes: &[u8]) -> Result<Option<(String, Vec<i64>)>, String> {
    let mut name = String::new();
    let mut ints = Vec::new();
    let mut is_int = false;
    for field in Wire::new(bytes) {
        let (number, value) = field?;
        match number {
            1 => name = value.string("AttributeProto.name")?,
            3 => {
                ints.push(value.varint("AttributeProto.i")? as i64);
                is_int = true;
            }
            8 => {
                ints.extend(
                    value
                        .varints("AttributeProto.ints")?
                        .into_iter()
                        .map(|v| v as i64),
                );
                is_int = true;
            }
            _ => {}
        }
    }
    Ok(is_int.then_some((name, ints)))
}

/// A float32 initializer's name and values; `None` for other element types (shape constants and
/// the like, which weight loading never needs).
fn parse_tensor(bytes: &[u8]) -> Result<Option<(String, HostTensor)>, String> {
    const FLOAT: u64 = 1;
    let mut name = String::new();
    let mut dims = Vec::new();
    let mut data_type = 0;
    let mut floats = Vec::new();
    let mut raw: Option<&[u8]> = None;
    for field in Wire::new(bytes) {
        let (number, value) = field?;
        match number {
            1 => dims.extend(value.varints("TensorProto.dims")?),
            2 => data_type = value.varint("TensorProto.data_type")?,
            4 => floats.extend(
                value
                    .fixed32s("TensorProto.float_data")?
                    .into_iter()
                    .map(f32::from_bits),
            ),
            8 => name = value.string("TensorProto.name")?,
            9 => raw = Some(value.bytes("TensorProto.raw_data")?),
            14 => {
                return Err(format!(
                "initializer `{name}` is stored outside the file (external data is not supported)"
            ))
            }
            _ => {}
        }
    }
    if data_type != FLOAT {
        return Ok(None);
    }
    let shape: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
    let data = match raw {
        Some(raw) => {
            if raw.len() % 4 != 0 {
                return Err(format!(
                    "initializer `{name}`: raw data of {} bytes is not float32",
                    raw.len()
                ));
            }
            raw.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        }
        None => floats,
    };
    let expected: usize = shape.iter().product();
    if data.len() != expected {
        return Err(format!(
            "initializer `{name}` has {} values for shape {shape:?} ({expected} expected)",
            data.len()
        ));
    }
    Ok(Some((name, HostTensor { shape, data })))
}

/// One decoded protobuf field value.
enum Value<'a> {
    Varint(u64),
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32(u32),
}

impl<'a> Value<'a> {
    fn bytes(self, what: &str) -> Result<&'a [u8], String> {
        match self {
            Value::Bytes(b) => Ok(b),
            _ => Err(format!("{what}: expected a length-delimited field")),
        }
    }

    fn string(self, what: &str) -> Result<String, String> {
        let bytes = self.bytes(what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| format!("{what}: not UTF-8"))
    }

    fn varint(self, what: &str) -> Result<u64, String> {
        match self {
            Value::Varint(v) => Ok(v),
            _ => Err(format!("{what}: expected a varint")),
        }
    }

    /// A repeated varint field, packed or not.
    fn varints(self, what: &str) -> Result<Vec<u64>, String> {
        match self {
            Value::Varint(v) => Ok(vec![v]),
            Value::Bytes(mut b) => {
                let mut out = Vec::new();
                while !b.is_empty() {
                    let (v, used) =
                        read_varint(b).ok_or_else(|| format!("{what}: bad packed varint"))?;
                    out.push(v);
                    b = &b[used..];
                }
                Ok(out)
            }
            _ => Err(format!("{what}: expected varints")),
        }
    }

    /// A repeated fixed32 field, packed or not.
    fn fixed32s(self, what: &str) -> Result<Vec<u32>, String> {
        match self {
            Value::Fixed32(v) => Ok(vec![v]),
            Value::Bytes(b) if b.len() % 4 == 0 => Ok(b
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()),
            _ => Err(format!("{what}: expected packed 32-bit values")),
        }
    }
}

/// Iterator over the `(field number, value)` pairs of one protobuf message.
struct Wire<'a> {
    buf: &'a [u8],
    failed: bool,
}

impl<'a> Wire<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, failed: false }
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Some(head)
    }

    fn next_field(&mut self) -> Result<(u32, Value<'a>), String> {
        let truncated = || "truncated protobuf message".to_string();
        let (key, used) = read_varint(self.buf).ok_or_else(truncated)?;
        self.buf = &self.buf[used..];
        let number = (key >> 3) as u32;
        let value = match key & 7 {
            0 => {
                let (v, used) = read_varint(self.buf).ok_or_else(truncated)?;
                self.buf = &self.buf[used..];
                Value::Varint(v)
            }
            1 => {
                self.take(8).ok_or_else(truncated)?;
                Value::Fixed64
            }
            2 => {
                let (len, used) = read_varint(self.buf).ok_or_else(truncated)?;
                self.buf = &self.buf[used..];
                let len = usize::try_from(len).map_err(|_| truncated())?;
                Value::Bytes(self.take(len).ok_or_else(truncated)?)
            }
            5 => {
                let b = self.take(4).ok_or_else(truncated)?;
                Value::Fixed32(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            other => {
                return Err(format!(
                    "unsupported protobuf wire type {other} (field {number})"
                ))
            }
        };
        Ok((number, value))
    }
}

impl<'a> Iterator for Wire<'a> {
    type Item = Result<(u32, Value<'a>), String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.buf.is_empty() {
            return None;
        }
        let field = self.next_field();
        self.failed = field.is_err();
        Some(field)
    }
}

/// Decodes a base-128 varint; returns the value and the bytes used.
fn read_varint(buf: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &byte) in buf.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_decode() {
        assert_eq!(read_varint(&[0x96, 0x01]), Some((150, 2)));
        assert_eq!(read_varint(&[0x80]), None);
    }

    #[test]
    fn garbage_is_a_typed_error() {
        let err = OnnxModel::parse(&[0x3a, 0xff, 0xff, 0x01], "x.onnx").unwrap_err();
        assert!(err.to_string().contains("x.onnx"), "{err}");
    }
}
