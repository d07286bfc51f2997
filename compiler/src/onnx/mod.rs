//! ONNX in: decoding ([`decode`]), the import into the IR ([`import()`]: static shapes, constant
//! folding of shape arithmetic), one importer function per operator ([`ops`]), and a small ONNX
//! builder for tests, benches and fuzzers ([`builder`]).

pub mod builder;
pub mod import;
mod importer;
mod ops;
mod tensor_ops;

pub use import::{decode, decodes, import};
pub use importer::broadcast;

/// The ONNX op types the importer handles (the op types of [`ops`]' table, sorted): a model
/// using any other op type is refused at import.
pub fn supported_ops() -> Vec<&'static str> {
    ops::OPS.iter().map(|(name, _)| *name).collect()
}

#[cfg(test)]
mod tests {
    use super::builder::{mobile_block, Attr, OnnxBuilder};
    use crate::error::CompileError;
    use crate::ir::{Act, Op};

    fn load(onnx: &[u8]) -> crate::Result<crate::ir::Graph> {
        crate::load_graph(onnx, "test.onnx", &Default::default())
    }

    #[test]
    fn a_dynamic_dimension_names_the_input_the_dim_and_the_flag() {
        use prost::Message;
        use tract_onnx::pb;
        let mut b = OnnxBuilder::new("dyn", 13);
        let x = b.input("image", &[1, 3, 8, 8]);
        let y = b.node("Relu", &[&x], vec![]);
        b.output(&y);
        let mut m = pb::ModelProto::decode(&b.build()[..]).unwrap();
        let input = &mut m.graph.as_mut().unwrap().input[0];
        let Some(pb::type_proto::Value::TensorType(t)) = input.r#type.as_mut().and_then(|t| t.value.as_mut()) else {
            panic!()
        };
        t.shape.as_mut().unwrap().dim[2].value =
            Some(pb::tensor_shape_proto::dimension::Value::DimParam("height".into()));
        let e = load(&m.encode_to_vec()).unwrap_err().to_string();
        assert_eq!(e, "input 'image': dimension 2 ('height') is dynamic; fix it with --input-shape image=1,3,HEIGHT,8");
        let shapes = [("image".to_string(), vec![1, 3, 5, 8])].into();
        let g = crate::load_graph(&m.encode_to_vec(), "test.onnx", &shapes).unwrap();
        assert_eq!(g.tensors[g.inputs[0]].shape, [1, 3, 5, 8]);
    }

    /// A model whose integer `mode` input selects a branch (as silero-vad's sample rate does):
    /// frozen with `freeze_inputs`, the If folds to its taken branch, the graph output keeps its
    /// name through the Identity, and the float reference (tract) runs the spliced model.
    #[test]
    fn an_if_on_a_frozen_input_imports_the_taken_branch() {
        use prost::Message;
        use tract_onnx::pb;
        let branch = |op: &str| -> pb::GraphProto {
            let mut b = OnnxBuilder::new(op, 13);
            let y = b.node(op, &["x"], vec![]);
            b.output(&y);
            pb::ModelProto::decode(&b.build()[..]).unwrap().graph.unwrap()
        };
        let mut b = OnnxBuilder::new("modes", 13);
        b.input("x", &[1, 4]);
        let mode = b.input("mode", &[1]);
        let one = b.constant_i64(vec![1]);
        let c = b.node("Equal", &[&mode, &one], vec![]);
        let y = b.node("If", &[&c], vec![]);
        let out = b.node("Identity", &[&y], vec![]);
        b.output(&out);
        let mut m = pb::ModelProto::decode(&b.build()[..]).unwrap();
        let g = m.graph.as_mut().unwrap();
        let Some(pb::type_proto::Value::TensorType(t)) = g.input[1].r#type.as_mut().and_then(|t| t.value.as_mut())
        else {
            panic!()
        };
        t.elem_type = 7;
        let node = g.node.iter_mut().find(|n| n.op_type == "If").unwrap();
        for (name, op) in [("then_branch", "Relu"), ("else_branch", "Neg")] {
            node.attribute.push(pb::AttributeProto {
                name: name.into(),
                r#type: 5,
                g: Some(branch(op)),
                ..Default::default()
            });
        }
        let onnx = m.encode_to_vec();
        let e = load(&onnx).unwrap_err().to_string();
        assert!(e.contains("input 'mode'") && e.contains("--input-value"), "{e}");
        for (v, op) in [(1.0, "Relu"), (0.0, "Neg")] {
            let frozen =
                super::import::freeze_inputs(&onnx, "m", &[("mode".into(), vec![v])], &Default::default()).unwrap();
            let g = load(&frozen).unwrap();
            let ops: Vec<&str> = g.nodes.iter().map(|n| n.onnx_op.as_str()).collect();
            assert_eq!(ops, [op]);
            assert_eq!(g.inputs.len(), 1);
            assert_eq!(g.tensors[g.outputs[0]].name, out);
            assert_eq!(g.branches.len(), 1);
            let r = crate::reference::Reference::new(&frozen, &g, vec![out.clone()]).unwrap();
            let y = r.run(&[-1.0, 2.0, -3.0, 4.0]).unwrap();
            let want = if v == 1.0 { [0.0, 2.0, 0.0, 4.0] } else { [1.0, -2.0, 3.0, -4.0] };
            assert_eq!(y[0], want);
        }
        let e = super::import::freeze_inputs(&onnx, "m", &[("mode".into(), vec![1.0, 2.0])], &Default::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("2 values for shape [1]"), "{e}");
    }

    /// Weights an exporter reorders with Slice, Concat and Transpose of initializers (PyTorch's
    /// LSTM gates, for one) are folded at import: the consumer sees a constant.
    #[test]
    fn movement_of_constants_folds_at_import() {
        let mut b = OnnxBuilder::new("fold", 13);
        let x = b.input("x", &[1, 3]);
        let w = b.constant(&[4, 3], (0..12).map(|v| v as f32).collect());
        let (s0, e0, s1, e1, ax) = (
            b.constant_i64(vec![2]),
            b.constant_i64(vec![4]),
            b.constant_i64(vec![0]),
            b.constant_i64(vec![2]),
            b.constant_i64(vec![0]),
        );
        let hi = b.node("Slice", &[&w, &s0, &e0, &ax], vec![]);
        let lo = b.node("Slice", &[&w, &s1, &e1, &ax], vec![]);
        let swapped = b.node("Concat", &[&hi, &lo], vec![("axis", Attr::Int(0))]);
        let wt = b.node("Transpose", &[&swapped], vec![("perm", Attr::Ints(vec![1, 0]))]);
        let y = b.node("MatMul", &[&x, &wt], vec![]);
        b.output(&y);
        let g = load(&b.build()).unwrap();
        let ops: Vec<&str> = g.nodes.iter().map(|n| n.onnx_op.as_str()).collect();
        assert_eq!(ops, ["MatMul"]);
        let dense = &g.nodes[0];
        assert!(g.is_const(dense.inputs[1]));
        // Rows 2, 3, 0, 1 of w as the [N, K] weights of the dense layer.
        assert_eq!(g.value(dense.inputs[1])[..6], [6.0, 7.0, 8.0, 9.0, 10.0, 11.0]);
    }

    #[test]
    fn the_op_table_is_sorted_and_has_each_op_once() {
        let names: Vec<&str> = super::ops::OPS.iter().map(|(n, _)| *n).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
    }

    #[test]
    fn imports_folds_batchnorm_and_fuses_activations() {
        let g = load(&mobile_block(1)).unwrap();
        let ops: Vec<&str> = g.nodes.iter().map(|n| n.op.type_name()).collect();
        assert_eq!(ops, ["Conv", "Conv", "Conv", "GlobalAveragePool", "Reshape", "Dense"]);
        // BatchNormalization folded into the first conv, Clip(0, 6) and Relu fused.
        assert_eq!(g.nodes[0].op.act(), Some(Act { lo: 0.0, hi: 6.0 }));
        assert!(matches!(g.nodes[1].op, Op::Conv { group: 32, act, .. } if act == Act { lo: 0.0, hi: f32::INFINITY }));
        let shape = |n: usize| g.tensors[g.nodes[n].outputs[0]].shape.clone();
        assert_eq!((shape(0), shape(2), shape(5)), (vec![1, 32, 8, 8], vec![1, 8, 8, 8], vec![1, 5]));
        // The Gemm's weight is `[N, K]`, its bias `[N]`.
        assert_eq!(g.tensors[g.nodes[5].inputs[1]].shape, [5, 8]);
        assert_eq!(g.tensors[g.nodes[0].inputs[1]].shape, [32, 4, 1, 1]);
        assert!(super::decodes() > 0);
    }

    #[test]
    fn sub_and_div_by_constants_become_add_and_mul() {
        let mut b = OnnxBuilder::new("arith", 13);
        let x = b.input("x", &[1, 4]);
        let c = b.constant(&[4], vec![1.0, 2.0, 4.0, 8.0]);
        let y = b.node("Sub", &[&x, &c], vec![]);
        let y = b.node("Div", &[&y, &c], vec![]);
        b.output(&y);
        let g = load(&b.build()).unwrap();
        assert!(matches!(g.nodes[0].op, Op::Add { .. }) && matches!(g.nodes[1].op, Op::Mul { .. }));
        assert_eq!(g.value(g.nodes[0].inputs[1]), [-1.0, -2.0, -4.0, -8.0]);
        assert_eq!(g.value(g.nodes[1].inputs[1]), [1.0, 0.5, 0.25, 0.125]);
    }

    #[test]
    fn shape_arithmetic_folds_at_import() {
        // Reshape to (Shape(x)[0], -1): the target shape is folded from the static shape.
        let mut b = OnnxBuilder::new("reshape", 13);
        let x = b.input("x", &[2, 3, 4]);
        let shape = b.node("Shape", &[&x], vec![]);
        let zero = b.constant_i64(vec![0]);
        let batch = b.node("Gather", &[&shape, &zero], vec![]);
        let rest = b.constant_i64(vec![-1]);
        let target = b.node("Concat", &[&batch, &rest], vec![("axis", super::builder::Attr::Int(0))]);
        let y = b.node("Reshape", &[&x, &target], vec![]);
        b.output(&y);
        let g = load(&b.build()).unwrap();
        assert_eq!(g.nodes.len(), 1);
        assert_eq!(g.tensors[g.outputs[0]].shape, [2, 12]);
    }

    #[test]
    fn an_unsupported_op_is_named_with_its_opset() {
        let mut b = OnnxBuilder::new("bad", 13);
        let x = b.input("x", &[1, 4]);
        let y = b.node("Cosh", &[&x], vec![]);
        b.output(&y);
        match load(&b.build()) {
            Err(CompileError::UnsupportedOp { op_type, opset, node }) => {
                assert_eq!((op_type.as_str(), opset, node.as_str()), ("Cosh", 13, "Cosh_1"));
            }
            other => panic!("{other:?}"),
        }
        // Several unsupported nodes: one error lists each (name, op type, opset, or the attribute
        // value), in graph order; a node reading an unsupported node's output is not listed.
        let mut b = OnnxBuilder::new("bad", 13);
        let x = b.input("x", &[1, 4, 8, 8]);
        let a = b.node("Cosh", &[&x], vec![]);
        let c = b.node("Relu", &[&a], vec![]);
        let m = b.node(
            "MaxPool",
            &[&x],
            vec![
                ("kernel_shape", Attr::Ints(vec![2, 2])),
                ("storage_order", Attr::Int(1)),
                ("auto_pad", Attr::Str("WEIRD")),
            ],
        );
        let y = b.node("Sinh", &[&m], vec![]);
        let z = b.node("Add", &[&c, &y], vec![]);
        b.output(&z);
        let e = load(&b.build()).unwrap_err();
        let CompileError::Nodes(list) = &e else { panic!("{e}") };
        assert_eq!(list.len(), 2, "{e}");
        let text = e.to_string();
        assert!(text.starts_with("2 nodes cannot be compiled: node 'Cosh_1': operator Cosh (opset 13)"), "{text}");
        assert!(text.contains("MaxPool_3") && text.contains("auto_pad WEIRD"), "{text}");
        assert!(!text.contains('\n'), "one line: {text}");
        // A supported op with a bad input names the node and the reason.
        let mut b = OnnxBuilder::new("bad", 13);
        let x = b.input("x", &[1, 4]);
        let y = b.node("Add", &[&x], vec![]);
        b.output(&y);
        let e = load(&b.build()).unwrap_err().to_string();
        assert!(e.contains("Add_1") && e.contains("missing input 1"), "{e}");
    }
}
