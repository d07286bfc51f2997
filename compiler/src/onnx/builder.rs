//! A small ONNX model builder (prost types), so tests, benches and fuzzers generate the models
//! they need in code instead of depending on files or Python.

use prost::Message;
use tract_onnx::pb;

const FLOAT: i32 = 1;
const INT64: i32 = 7;

/// Deterministic pseudo-random numbers (xorshift64*), enough for test weights.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32)
    }
    /// Approximately normal (sum of uniforms), mean 0, std `std`.
    pub fn normal(&mut self, std: f32) -> f32 {
        let s: f32 = (0..4).map(|_| self.uniform(-1.0, 1.0)).sum();
        s * std * (3.0f32 / 4.0).sqrt()
    }
    pub fn vec(&mut self, n: usize, std: f32) -> Vec<f32> {
        (0..n).map(|_| self.normal(std)).collect()
    }
}

pub enum Attr {
    Int(i64),
    Ints(Vec<i64>),
    Float(f32),
    Str(&'static str),
}

pub struct OnnxBuilder {
    graph: pb::GraphProto,
    opset: i64,
    counter: usize,
}

fn value_info(name: &str, shape: &[usize]) -> pb::ValueInfoProto {
    pb::ValueInfoProto {
        name: name.to_string(),
        r#type: Some(pb::TypeProto {
            denotation: String::new(),
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: FLOAT,
                shape: Some(pb::TensorShapeProto {
                    dim: shape
                        .iter()
                        .map(|&d| pb::tensor_shape_proto::Dimension {
                            denotation: String::new(),
                            value: Some(pb::tensor_shape_proto::dimension::Value::DimValue(d as i64)),
                        })
                        .collect(),
                }),
            })),
        }),
        doc_string: String::new(),
    }
}

impl OnnxBuilder {
    pub fn new(name: &str, opset: i64) -> OnnxBuilder {
        OnnxBuilder { graph: pb::GraphProto { name: name.to_string(), ..Default::default() }, opset, counter: 0 }
    }

    pub fn input(&mut self, name: &str, shape: &[usize]) -> String {
        self.graph.input.push(value_info(name, shape));
        name.to_string()
    }

    pub fn output(&mut self, name: &str) {
        self.graph.output.push(pb::ValueInfoProto { name: name.to_string(), ..Default::default() });
    }

    pub fn constant(&mut self, shape: &[usize], data: Vec<f32>) -> String {
        self.counter += 1;
        let name = format!("const_{}", self.counter);
        self.graph.initializer.push(pb::TensorProto {
            name: name.clone(),
            dims: shape.iter().map(|&d| d as i64).collect(),
            data_type: FLOAT,
            raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
        name
    }

    pub fn constant_i64(&mut self, data: Vec<i64>) -> String {
        self.counter += 1;
        let name = format!("const_{}", self.counter);
        self.graph.initializer.push(pb::TensorProto {
            name: name.clone(),
            dims: vec![data.len() as i64],
            data_type: INT64,
            int64_data: data,
            ..Default::default()
        });
        name
    }

    /// Add a node; returns its (first) output name.
    pub fn node(&mut self, op: &str, inputs: &[&str], attrs: Vec<(&str, Attr)>) -> String {
        self.counter += 1;
        let out = format!("{}_{}", op.to_lowercase(), self.counter);
        let attribute = attrs
            .into_iter()
            .map(|(name, a)| {
                let mut p = pb::AttributeProto { name: name.to_string(), ..Default::default() };
                match a {
                    Attr::Int(i) => {
                        p.i = i;
                        p.r#type = 2;
                    }
                    Attr::Ints(v) => {
                        p.ints = v;
                        p.r#type = 7;
                    }
                    Attr::Float(f) => {
                        p.f = f;
                        p.r#type = 1;
                    }
                    Attr::Str(s) => {
                        p.s = s.as_bytes().to_vec();
                        p.r#type = 3;
                    }
                }
                p
            })
            .collect();
        self.graph.node.push(pb::NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            name: format!("{}_{}", op, self.counter),
            op_type: op.to_string(),
            attribute,
            ..Default::default()
        });
        out
    }

    /// A node with two outputs (Split into two, ...), returning their names.
    pub fn node2(&mut self, op: &str, inputs: &[&str], attrs: Vec<(&str, Attr)>) -> (String, String) {
        let first = self.node(op, inputs, attrs);
        let second = format!("{first}_1");
        self.graph.node.last_mut().expect("just pushed").output.push(second.clone());
        (first, second)
    }

    pub fn build(self) -> Vec<u8> {
        let model = pb::ModelProto {
            ir_version: 8,
            producer_name: "sparq-tests".into(),
            opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: self.opset }],
            graph: Some(self.graph),
            ..Default::default()
        };
        model.encode_to_vec()
    }
}

/// A copy of the ONNX model `onnx` with, in every float initializer of rank 2 or more, the
/// smallest-magnitude `fraction` of the values set to zero: a model pruned by another tool, for
/// the tests of existing sparsity.
pub fn zero_smallest(onnx: &[u8], fraction: f64) -> Vec<u8> {
    let mut model = pb::ModelProto::decode(onnx).expect("a valid ONNX model");
    if let Some(graph) = model.graph.as_mut() {
        for t in graph.initializer.iter_mut().filter(|t| t.data_type == FLOAT && t.dims.len() >= 2) {
            let mut v: Vec<f32> = if t.raw_data.is_empty() {
                t.float_data.clone()
            } else {
                t.raw_data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
            };
            let mut order: Vec<usize> = (0..v.len()).collect();
            order.sort_by(|&a, &b| v[a].abs().total_cmp(&v[b].abs()));
            for &i in &order[..(fraction * v.len() as f64) as usize] {
                v[i] = 0.0;
            }
            t.raw_data = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            t.float_data.clear();
        }
    }
    model.encode_to_vec()
}

/// A small MobileNet-like model for unit tests: input `[1, 4, 8, 8]` -> conv 1x1 (4 -> 32) -
/// BatchNormalization - Clip(0, 6) -> depthwise conv 3x3 (32) - Relu -> conv 1x1 (32 -> 8) ->
/// GlobalAveragePool -> Flatten -> Gemm (8 -> 5, transB). The conv -> depthwise -> conv chain
/// is what channel pruning removes channels from.
pub fn mobile_block(seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut b = OnnxBuilder::new("mobile_block", 13);
    let x = b.input("input", &[1, 4, 8, 8]);
    let mut conv = |b: &mut OnnxBuilder, x: &str, cin: usize, cout: usize, k: usize, group: usize| {
        let per = cin / group * k * k;
        let w = b.constant(&[cout, cin / group, k, k], rng.vec(cout * per, (2.0 / per as f32).sqrt()));
        let bias = b.constant(&[cout], rng.vec(cout, 0.1));
        let p = (k / 2) as i64;
        b.node(
            "Conv",
            &[x, &w, &bias],
            vec![
                ("pads", Attr::Ints(vec![p, p, p, p])),
                ("group", Attr::Int(group as i64)),
                ("kernel_shape", Attr::Ints(vec![k as i64, k as i64])),
            ],
        )
    };
    let h = conv(&mut b, &x, 4, 32, 1, 1);
    let (scale, shift) = (b.constant(&[32], vec![1.5; 32]), b.constant(&[32], vec![0.1; 32]));
    let (mean, var) = (b.constant(&[32], vec![0.2; 32]), b.constant(&[32], vec![0.8; 32]));
    let h = b.node("BatchNormalization", &[&h, &scale, &shift, &mean, &var], vec![]);
    let (lo, hi) = (b.constant(&[], vec![0.0]), b.constant(&[], vec![6.0]));
    let h = b.node("Clip", &[&h, &lo, &hi], vec![]);
    let h = conv(&mut b, &h, 32, 32, 3, 32);
    let h = b.node("Relu", &[&h], vec![]);
    let h = conv(&mut b, &h, 32, 8, 1, 1);
    let h = b.node("GlobalAveragePool", &[&h], vec![]);
    let h = b.node("Flatten", &[&h], vec![]);
    let mut rng = Rng::new(seed + 1);
    let w = b.constant(&[5, 8], rng.vec(40, 0.3));
    let c = b.constant(&[5], rng.vec(5, 0.1));
    let y = b.node("Gemm", &[&h, &w, &c], vec![("transB", Attr::Int(1))]);
    b.output(&y);
    b.build()
}
