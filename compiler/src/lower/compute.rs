//! The lowering of the ops that become several runtime ops (format 1.4 kinds and the data
//! movements built from RESHAPE, TRANSPOSE and CONCAT): matrix products of activations with Gemm's
//! scaling and bias, reductions without keepdims, normalizations, variadic Min/Max, gathers,
//! DepthToSpace/SpaceToDepth and Tile/Expand. Intermediate results are runtime tensors of their
//! own (`<node>:<step>`); the last step writes the IR output.

use super::state::Lowerer;
use super::write::{bits, bytes_f32, bytes_i32};
use crate::error::Result;
use crate::ir::{Act, Node, Window};
use crate::quant::{requant, QParams};
use sparq_format::layout::op as rop;
use sparq_format::layout::OP_PARAMS;
use sparq_format::{DType, Layout};

const NO_PARAMS: [i32; OP_PARAMS] = [0; OP_PARAMS];

impl Lowerer<'_> {
    #[allow(clippy::too_many_arguments)]
    /// The output of one step of node `n`: the IR output (in `layout`) when `last`, else an
    /// intermediate row-major tensor of `shape`.
    #[allow(clippy::too_many_arguments)]
    fn step(
        &mut self,
        n: &Node,
        last: bool,
        tag: &str,
        dt: DType,
        shape: &[usize],
        layout: Layout,
        q: Option<QParams>,
    ) -> u32 {
        if last {
            self.output(n.outputs[0], dt, layout, q)
        } else {
            self.act(&format!("{}:{tag}", n.name), dt, shape, Layout::RowMajor, q)
        }
    }

    fn dims(&self, id: u32) -> Vec<usize> {
        self.spec.tensors[id as usize].dims.clone()
    }

    /// An f32 element-wise step `y = x (op) c` with `c` a constant of `c_shape`.
    #[allow(clippy::too_many_arguments)]
    fn f32_with_constant(&mut self, n: &Node, kind: u16, x: u32, c: &[f32], c_shape: &[usize], y: u32, tag: &str) {
        let cid = self.constant(&format!("{}:{tag}", n.name), DType::F32, c_shape, bytes_f32(c), None);
        let mut p = NO_PARAMS;
        p[rop::ACT_MIN] = bits(f32::NEG_INFINITY);
        p[rop::ACT_MAX] = bits(f32::INFINITY);
        self.op(kind, &format!("{}:{tag}", n.name), vec![x, cid], y, p);
    }

    /// MatMul / Gemm of activations: MATMUL, then `* alpha`, `+ beta c`, and a reshape back
    /// from the 2-d forms of 1-d operands.
    pub(super) fn lower_matmul(&mut self, n: &Node, trans_a: bool, trans_b: bool, alpha: f32, beta: f32) -> Result<()> {
        let g = self.g;
        let out_shape = g.tensors[n.outputs[0]].shape.clone();
        let mut ins = [0u32; 2];
        for (k, &t) in n.inputs[..2].iter().enumerate() {
            let id = self.get(t, DType::F32, None)?;
            let s = g.tensors[t].shape.clone();
            ins[k] = if s.len() == 1 {
                // numpy: a 1-d left operand is a row, a 1-d right operand a column.
                let two = if k == 0 { vec![1, s[0]] } else { vec![s[0], 1] };
                let r = self.act(&format!("{}:operand{k}", n.name), DType::F32, &two, Layout::RowMajor, None);
                self.op(rop::RESHAPE, &format!("{}:operand{k}", n.name), vec![id], r, NO_PARAMS);
                r
            } else {
                id
            };
        }
        let (sa, sb) = (self.dims(ins[0]), self.dims(ins[1]));
        let (ra, rb) = (sa.len(), sb.len());
        let m = if trans_a { sa[ra - 1] } else { sa[ra - 2] };
        let nn = if trans_b { sb[rb - 2] } else { sb[rb - 1] };
        let mut prod = crate::onnx::broadcast(&sa[..ra - 2], &sb[..rb - 2]).unwrap_or_default();
        prod.extend([m, nn]);
        let scale = alpha != 1.0;
        let bias = n.inputs.get(2).copied();
        let reshape = prod != out_shape;
        let steps = 1 + scale as usize + bias.is_some() as usize + reshape as usize;
        let mut done = 0;
        let mut next = |this: &mut Self, tag: &str, shape: &[usize]| {
            done += 1;
            this.step(n, done == steps, tag, DType::F32, shape, Layout::RowMajor, None)
        };
        let mut p = NO_PARAMS;
        p[rop::MATMUL_TRANSPOSE] = trans_a as i32 | (trans_b as i32) << 1;
        let mut cur = next(self, "product", &prod);
        self.op(rop::MATMUL, &n.name, ins.to_vec(), cur, p);
        if scale {
            let y = next(self, "alpha", &prod);
            self.f32_with_constant(n, rop::MUL, cur, &[alpha], &[1], y, "alpha");
            cur = y;
        }
        if let Some(c) = bias {
            let y = next(self, "bias", &prod);
            if g.is_const(c) {
                let v: Vec<f32> = g.value(c).iter().map(|&x| beta * x).collect();
                let cs = g.tensors[c].shape.clone();
                self.f32_with_constant(n, rop::ADD, cur, &v, &cs, y, "c");
            } else {
                // The importer accepts a computed C only with beta = 1.
                let ci = self.get(c, DType::F32, None)?;
                let mut p = NO_PARAMS;
                self.clamp_params(&mut p, Act::NONE, None);
                self.op(rop::ADD, &format!("{}:c", n.name), vec![cur, ci], y, p);
            }
            cur = y;
        }
        if reshape {
            let y = next(self, "reshape", &out_shape);
            self.op(rop::RESHAPE, &format!("{}:reshape", n.name), vec![cur], y, NO_PARAMS);
        }
        Ok(())
    }

    /// REDUCE keeping the reduced axes, then a reshape when the node drops them.
    pub(super) fn lower_reduce(&mut self, n: &Node, function: i32, axes: &[usize], select_last: bool) -> Result<()> {
        let (x, out) = (n.inputs[0], n.outputs[0]);
        let xi = self.get(x, DType::F32, None)?;
        let mut keep = self.g.tensors[x].shape.clone();
        let mut p = NO_PARAMS;
        for &a in axes {
            keep[a] = 1;
            p[rop::REDUCE_AXES] |= 1 << a;
        }
        p[rop::FUNCTION] = function;
        p[rop::REDUCE_SELECT_LAST] = select_last as i32;
        let reshape = keep != self.g.tensors[out].shape;
        let y = self.step(n, !reshape, "keepdims", DType::F32, &keep, Layout::RowMajor, None);
        self.op(rop::REDUCE, &n.name, vec![xi], y, p);
        if reshape {
            let z = self.output(out, DType::F32, Layout::RowMajor, None);
            self.op(rop::RESHAPE, &format!("{}:reshape", n.name), vec![y], z, NO_PARAMS);
        }
        Ok(())
    }

    /// NORMALIZE with the affine of the normalized shape (LayerNormalization), or NORMALIZE then
    /// a per-channel multiply and add (InstanceNormalization).
    pub(super) fn lower_normalize(&mut self, n: &Node, axis: usize, eps: f32, per_channel: bool) -> Result<()> {
        let g = self.g;
        let x = n.inputs[0];
        let xi = self.get(x, DType::F32, Some(Layout::RowMajor))?;
        let shape = g.tensors[x].shape.clone();
        let mut p = NO_PARAMS;
        p[rop::AXIS] = axis as i32;
        p[rop::NORM_EPSILON] = bits(eps);
        let (scale, bias) = (g.value(n.inputs[1]).to_vec(), g.value(n.inputs[2]).to_vec());
        if !per_channel {
            let inner: usize = shape[axis..].iter().product();
            let s = self.constant(&format!("{}:scale", n.name), DType::F32, &[inner], bytes_f32(&scale), None);
            let b = self.constant(&format!("{}:bias", n.name), DType::F32, &[inner], bytes_f32(&bias), None);
            let y = self.output(n.outputs[0], DType::F32, Layout::RowMajor, None);
            self.op(rop::NORMALIZE, &n.name, vec![xi, s, b], y, p);
            return Ok(());
        }
        let normalized = self.act(&format!("{}:normalized", n.name), DType::F32, &shape, Layout::RowMajor, None);
        self.op(rop::NORMALIZE, &n.name, vec![xi], normalized, p);
        let mut cs = vec![shape[1]];
        cs.extend(std::iter::repeat_n(1, shape.len() - 2));
        let scaled = self.act(&format!("{}:scaled", n.name), DType::F32, &shape, Layout::RowMajor, None);
        self.f32_with_constant(n, rop::MUL, normalized, &scale, &cs, scaled, "scale");
        let layout = self.default_layout(n.outputs[0]);
        let y = self.output(n.outputs[0], DType::F32, layout, None);
        self.f32_with_constant(n, rop::ADD, scaled, &bias, &cs, y, "bias");
        Ok(())
    }

    /// BINARY over two or more inputs, folded left; int8 Min/Max with every input requantized to
    /// the output's quantization.
    pub(super) fn lower_binary(&mut self, n: &Node, function: i32, float: bool) -> Result<()> {
        let g = self.g;
        let out = n.outputs[0];
        let dt = if float { DType::F32 } else { DType::I8 };
        let q = if float { None } else { Some(self.out_qp(out, Act::NONE)?) };
        if let (Some(qo), rop::binary::SUB) = (q, function) {
            // int8 Sub (format 1.5): int8 Add's requantization of both operands, `mult_b` negated
            // by the runtime; no Requantize ops in front.
            let (ai, bi) = (self.get(n.inputs[0], dt, None)?, self.get(n.inputs[1], dt, None)?);
            let m = requant::add(self.tensor_q(ai), self.tensor_q(bi), qo);
            let mut p = NO_PARAMS;
            p[rop::FUNCTION] = function;
            p[rop::MULT_A] = m.mult_a;
            p[rop::MULT_B] = m.mult_b;
            p[rop::SHIFT] = m.shift;
            (p[rop::ACT_MIN], p[rop::ACT_MAX]) = requant::act_bounds(Act::NONE, qo);
            let layout = self.default_layout(out);
            let y = self.output(out, dt, layout, q);
            self.op(rop::BINARY, &n.name, vec![ai, bi], y, p);
            return Ok(());
        }
        let mut ins = Vec::new();
        for (k, &t) in n.inputs.iter().enumerate() {
            let xi = self.get(t, dt, None)?;
            let xi = match q {
                Some(qo) if self.tensor_q(xi) != qo => {
                    let m = requant::rescale(self.tensor_q(xi), qo);
                    let mut rp = NO_PARAMS;
                    rp[rop::MULT_A] = m.mult;
                    rp[rop::SHIFT] = m.shift;
                    let layout = self.spec.tensors[xi as usize].layout;
                    let shape = g.tensors[t].shape.clone();
                    let r = self.act(&format!("{}:requant{k}", n.name), dt, &shape, layout, Some(qo));
                    self.op(rop::REQUANTIZE, &format!("{}:requantize{k}", n.name), vec![xi], r, rp);
                    r
                }
                _ => xi,
            };
            ins.push(xi);
        }
        let mut p = NO_PARAMS;
        p[rop::FUNCTION] = function;
        let mut cur = ins[0];
        let mut shape = self.dims(cur);
        let layout = self.default_layout(out);
        for (k, &b) in ins.iter().enumerate().skip(1) {
            shape = crate::onnx::broadcast(&shape, &self.dims(b)).unwrap_or_default();
            let y = self.step(n, k == ins.len() - 1, &format!("partial{k}"), dt, &shape, layout, q);
            let name = if k == 1 { n.name.clone() } else { format!("{}:{k}", n.name) };
            self.op(rop::BINARY, &name, vec![cur, b], y, p);
            cur = y;
        }
        Ok(())
    }

    /// GATHER with the indices as an i32 constant.
    pub(super) fn lower_gather(&mut self, n: &Node, axis: usize, float: bool) -> Result<()> {
        let g = self.g;
        let dt = if float { DType::F32 } else { DType::I8 };
        let xi = self.get(n.inputs[0], dt, Some(Layout::RowMajor))?;
        let it = &g.tensors[n.inputs[1]];
        let idx: Vec<i32> = g.value(n.inputs[1]).iter().map(|&v| v as i32).collect();
        let iid = self.constant(&format!("{}:indices", n.name), DType::I32, &it.shape, bytes_i32(&idx), None);
        let mut p = NO_PARAMS;
        p[rop::AXIS] = axis as i32;
        let q = (!float).then(|| self.tensor_q(xi));
        let y = self.output(n.outputs[0], dt, Layout::RowMajor, q);
        self.op(rop::GATHER, &n.name, vec![xi, iid], y, p);
        Ok(())
    }

    /// RESHAPE to `shape`, TRANSPOSE by `perm`, RESHAPE to the output (pure movement).
    pub(super) fn lower_shuffle(&mut self, n: &Node, shape: &[usize], perm: &[usize], float: bool) -> Result<()> {
        let dt = if float { DType::F32 } else { DType::I8 };
        let xi = self.get(n.inputs[0], dt, None)?;
        let q = (!float).then(|| self.tensor_q(xi));
        let a = self.act(&format!("{}:split", n.name), dt, shape, Layout::RowMajor, q);
        self.op(rop::RESHAPE, &format!("{}:split", n.name), vec![xi], a, NO_PARAMS);
        let permuted: Vec<usize> = perm.iter().map(|&i| shape[i]).collect();
        let b = self.act(&format!("{}:permuted", n.name), dt, &permuted, Layout::RowMajor, q);
        let mut p = NO_PARAMS;
        for (slot, &i) in perm.iter().enumerate() {
            p[slot] = i as i32;
        }
        self.op(rop::TRANSPOSE, &n.name, vec![a], b, p);
        let layout = self.default_layout(n.outputs[0]);
        let y = self.output(n.outputs[0], dt, layout, q);
        self.op(rop::RESHAPE, &format!("{}:merge", n.name), vec![b], y, NO_PARAMS);
        Ok(())
    }

    /// Tile / Expand: a reshape to the output's rank, then CONCAT of copies along each axis that
    /// grows (pure movement).
    pub(super) fn lower_tile(&mut self, n: &Node, float: bool) -> Result<()> {
        let g = self.g;
        let dt = if float { DType::F32 } else { DType::I8 };
        let out_shape = g.tensors[n.outputs[0]].shape.clone();
        let mut cur = self.get(n.inputs[0], dt, None)?;
        let q = (!float).then(|| self.tensor_q(cur));
        let mut shape = vec![1usize; out_shape.len()];
        let s = &g.tensors[n.inputs[0]].shape;
        shape[out_shape.len() - s.len()..].copy_from_slice(s);
        let grow: Vec<usize> = (0..shape.len()).filter(|&a| shape[a] != out_shape[a]).collect();
        let layout = self.default_layout(n.outputs[0]);
        if grow.is_empty() || shape.len() != s.len() {
            let last = grow.is_empty();
            let y = self.step(n, last, "rank", dt, &shape, layout, q);
            self.op(rop::RESHAPE, &format!("{}:rank", n.name), vec![cur], y, NO_PARAMS);
            cur = y;
        }
        for (k, &a) in grow.iter().enumerate() {
            let copies = out_shape[a] / shape[a];
            shape[a] = out_shape[a];
            let y = self.step(n, k == grow.len() - 1, &format!("axis{a}"), dt, &shape, layout, q);
            let mut p = NO_PARAMS;
            p[rop::AXIS] = a as i32;
            let name = if k == 0 { n.name.clone() } else { format!("{}:axis{a}", n.name) };
            self.op(rop::CONCAT, &name, vec![cur; copies], y, p);
            cur = y;
        }
        Ok(())
    }

    /// LSTM / GRU: one runtime op writing y, y_h (and y_c); the outputs the node does not have are
    /// runtime-only tensors. Returns the bytes of weights.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn lower_recurrent(
        &mut self,
        n: &Node,
        lstm: bool,
        direction: i32,
        clip: f32,
        linear_before_reset: bool,
        outputs: &[bool; 3],
        batch_first: bool,
    ) -> Result<usize> {
        let g = self.g;
        // Batch first (ONNX layout=1): X and the states are transposed into the runtime's
        // seq-first order, the outputs back.
        let transpose = |this: &mut Self, src: u32, tag: &str, dims: &[usize], perm: &[usize]| {
            let id = this.act(&format!("{}:{tag}", n.name), DType::F32, dims, Layout::RowMajor, None);
            let mut p = NO_PARAMS;
            for (slot, &a) in perm.iter().enumerate() {
                p[slot] = a as i32;
            }
            this.op(rop::TRANSPOSE, &format!("{}:{tag}", n.name), vec![src], id, p);
            id
        };
        let swap01 = |s: &[usize]| vec![s[1], s[0], s[2]];
        let mut ins = Vec::new();
        for (k, &t) in n.inputs.iter().enumerate() {
            let id = self.get(t, DType::F32, Some(Layout::RowMajor))?;
            let seq_first = batch_first && (k == 0 || k >= 4);
            let s = g.tensors[t].shape.clone();
            ins.push(if seq_first {
                transpose(self, id, &format!("seq_first{k}"), &swap01(&s), &[1, 0, 2])
            } else {
                id
            });
        }
        let weight_bytes = n.inputs[1..4].iter().map(|&t| g.tensors[t].elements() * 4).sum();
        let xs = &g.tensors[n.inputs[0]].shape;
        let seq = if batch_first { xs[1] } else { xs[0] };
        let state = g.tensors[n.inputs[4]].shape.clone();
        let state = if batch_first { swap01(&state) } else { state };
        let y_shape = vec![seq, state[0], state[1], state[2]];
        let count = if lstm { 3 } else { 2 };
        let mut outs = Vec::new();
        let mut finals = Vec::new();
        let mut present = n.outputs.iter();
        for (k, tag) in ["y", "y_h", "y_c"].iter().enumerate().take(count) {
            let shape = if k == 0 { y_shape.clone() } else { state.clone() };
            let id = if outputs[k] && !batch_first {
                let t = *present.next().expect("one IR output per present output");
                self.output(t, DType::F32, Layout::RowMajor, None)
            } else {
                if outputs[k] {
                    finals.push((k, *present.next().expect("one IR output per present output"), shape.clone()));
                }
                self.act(&format!("{}:{tag}", n.name), DType::F32, &shape, Layout::RowMajor, None)
            };
            outs.push(id);
        }
        let mut p = NO_PARAMS;
        p[rop::RNN_DIRECTION] = direction;
        p[rop::RNN_CLIP] = bits(clip);
        p[rop::RNN_LINEAR_BEFORE_RESET] = linear_before_reset as i32;
        let kind = if lstm { rop::LSTM } else { rop::GRU };
        self.spec.ops.push(sparq_format::writer::OpSpec {
            kind,
            name: n.name.clone(),
            inputs: ins,
            outputs: outs.clone(),
            params: p,
        });
        for (k, t, shape) in finals {
            let (perm, dims): (&[usize], Vec<usize>) = if k == 0 {
                (&[2, 0, 1, 3], vec![shape[2], shape[0], shape[1], shape[3]])
            } else {
                (&[1, 0, 2], swap01(&shape))
            };
            let y = self.output(t, DType::F32, Layout::RowMajor, None);
            let mut p = NO_PARAMS;
            for (slot, &a) in perm.iter().enumerate() {
                p[slot] = a as i32;
            }
            debug_assert_eq!(self.g.tensors[t].shape, dims);
            self.op(rop::TRANSPOSE, &format!("{}:batch_first{k}", n.name), vec![outs[k]], y, p);
        }
        Ok(weight_bytes)
    }

    /// The NHWC input of a window op (convolution, pooling): a rank-3 `[N, C, L]` tensor (1-d) is
    /// reshaped to `[N, C, 1, L]`.
    pub(super) fn window_input(&mut self, x: usize, dt: DType) -> Result<u32> {
        let s = self.g.tensors[x].shape.clone();
        if s.len() != 3 {
            return self.get(x, dt, Some(Layout::Nhwc));
        }
        let src = self.get(x, dt, None)?;
        let q = (dt == DType::I8).then(|| self.tensor_q(src));
        let name = format!("{}:2d", self.g.tensors[x].name);
        let id = self.act(&name, dt, &[s[0], s[1], 1, s[2]], Layout::Nhwc, q);
        self.op(rop::RESHAPE, &name, vec![src], id, NO_PARAMS);
        Ok(id)
    }

    /// The NHWC output of a window op: the IR output, or for a rank-3 one an `[N, C, 1, L]`
    /// tensor that [`Self::finish_window_output`] reshapes into it.
    pub(super) fn window_output(&mut self, n: &Node, out: usize, dt: DType, q: Option<QParams>) -> u32 {
        let s = self.g.tensors[out].shape.clone();
        if s.len() != 3 {
            return self.output(out, dt, Layout::Nhwc, q);
        }
        self.act(&format!("{}:2d", n.name), dt, &[s[0], s[1], 1, s[2]], Layout::Nhwc, q)
    }

    pub(super) fn finish_window_output(&mut self, n: &Node, out: usize, y: u32, dt: DType, q: Option<QParams>) {
        if self.g.tensors[out].shape.len() == 3 {
            let z = self.output(out, dt, Layout::RowMajor, q);
            self.op(rop::RESHAPE, &format!("{}:1d", n.name), vec![y], z, NO_PARAMS);
        }
    }

    /// A transposed convolution whose windows do not overlap (kernel = stride, no padding, no
    /// dilation, one group: the 2x upsampling of detection and segmentation heads) is a 1x1
    /// convolution to `kh * kw * C_out` channels followed by a depth-to-space (DCR) shuffle:
    /// output pixel `(y * s + ky, x * s + kx)` channel `co` is `x[y, x] . W[:, co, ky, kx] + b[co]`.
    /// It then runs on the GEMM kernels (int8 or f32) instead of the transposed-convolution
    /// gather. Returns the weight bytes, or `None` when the windows overlap.
    pub(super) fn lower_conv_transpose_pixels(
        &mut self,
        n: &Node,
        window: &Window,
        group: usize,
        float: bool,
    ) -> Result<Option<usize>> {
        use super::write::set_window;
        use crate::quant::quantize_per_channel;
        let g = self.g;
        let (x, w, b, out) = (n.inputs[0], n.inputs[1], n.inputs[2], n.outputs[0]);
        let (xs, ws, ys) = (&g.tensors[x].shape, &g.tensors[w].shape, &g.tensors[out].shape);
        if group != 1
            || xs.len() != 4
            || window.kernel != window.strides
            || window.pads != [0; 4]
            || window.dilations != [1, 1]
            || ys[2] != xs[2] * window.strides[0]
            || ys[3] != xs[3] * window.strides[1]
            || window.kernel[0] != window.kernel[1]
        {
            return Ok(None);
        }
        let (cin, cout, s) = (ws[0], ws[1], window.kernel[0]);
        let n_out = s * s * cout;
        // Rows (ky, kx, co) of the 1x1 weights, columns ci; the bias repeats per (ky, kx).
        let mut wm = vec![0f32; n_out * cin];
        for ci in 0..cin {
            for co in 0..cout {
                for t in 0..s * s {
                    wm[(t * cout + co) * cin + ci] = g.value(w)[(ci * cout + co) * s * s + t];
                }
            }
        }
        let bias: Vec<f32> = (0..n_out).map(|r| g.value(b)[r % cout]).collect();
        let dt = if float { DType::F32 } else { DType::I8 };
        let xi = self.get(x, dt, Some(Layout::Nhwc))?;
        let mut p = NO_PARAMS;
        set_window(&mut p, &Window { kernel: [1, 1], strides: [1, 1], pads: [0; 4], dilations: [1, 1] });
        p[sparq_format::layout::op::window::GROUPS] = 1;
        let name = |tag: &str| format!("{}:{tag}", n.name);
        let w_dims = [n_out, 1, 1, cin];
        let (inputs, q, bytes) = if float {
            let wid = self.constant(&name("weights"), DType::F32, &w_dims, bytes_f32(&wm), None);
            let bid = self.constant(&name("bias"), DType::F32, &[n_out], bytes_f32(&bias), None);
            self.clamp_params(&mut p, Act::NONE, None);
            (vec![xi, wid, bid], None, (wm.len() + n_out) * 4)
        } else {
            let (qw, scales) = quantize_per_channel(&wm, n_out);
            let (qx, qo) = (self.tensor_q(xi), self.out_qp(out, Act::NONE)?);
            let requant::ChannelRequant { bias: b32, mult, shift } = requant::channel_outputs(qx, &scales, qo, &bias);
            let wid = self.matrix_constant(&name("weights"), &w_dims, &qw, true, false);
            let bid = self.constant(&name("bias"), DType::I32, &[n_out], bytes_i32(&b32), None);
            let mid = self.constant(&name("multiplier"), DType::I32, &[n_out], bytes_i32(&mult), None);
            let sid = self.constant(&name("shift"), DType::I32, &[n_out], bytes_i32(&shift), None);
            self.clamp_params(&mut p, Act::NONE, Some(qo));
            (vec![xi, wid, bid, mid, sid], Some(qo), qw.len() + n_out * 12)
        };
        let (bn, h, wd) = (xs[0], xs[2], xs[3]);
        let pixels = self.act(&name("pixels"), dt, &[bn, n_out, h, wd], Layout::Nhwc, q);
        self.op(rop::CONV2D, &n.name, inputs, pixels, p);
        // Depth-to-space, DCR: [N, s, s, C, H, W] -> [N, C, H, s, W, s].
        let split = [bn, s, s, cout, h, wd];
        let a = self.act(&name("split"), dt, &split, Layout::RowMajor, q);
        self.op(rop::RESHAPE, &name("split"), vec![pixels], a, NO_PARAMS);
        let perm = [0usize, 3, 4, 1, 5, 2];
        let permuted: Vec<usize> = perm.iter().map(|&i| split[i]).collect();
        let t = self.act(&name("shuffled"), dt, &permuted, Layout::RowMajor, q);
        let mut tp = NO_PARAMS;
        for (slot, &i) in perm.iter().enumerate() {
            tp[slot] = i as i32;
        }
        self.op(rop::TRANSPOSE, &name("shuffled"), vec![a], t, tp);
        let layout = self.default_layout(out);
        let y = self.output(out, dt, layout, q);
        self.op(rop::RESHAPE, &name("merge"), vec![t], y, NO_PARAMS);
        Ok(Some(bytes))
    }

    /// An f32 unary function with a scalar affine after it (`Op::Unary::post`): UNARY, then MUL
    /// and ADD by the constants.
    pub(super) fn lower_unary_affine(
        &mut self,
        n: &Node,
        xi: u32,
        p: [i32; OP_PARAMS],
        post: [f32; 2],
        layout: Layout,
    ) {
        let out = n.outputs[0];
        let dims = self.g.tensors[out].shape.clone();
        let f = self.act(&format!("{}:function", n.name), DType::F32, &dims, layout, None);
        self.op(rop::UNARY, &n.name, vec![xi], f, p);
        let s = self.act(&format!("{}:scaled", n.name), DType::F32, &dims, layout, None);
        self.f32_with_constant(n, rop::MUL, f, &[post[0]], &[1], s, "post_scale");
        let y = self.output(out, DType::F32, layout, None);
        self.f32_with_constant(n, rop::ADD, s, &[post[1]], &[1], y, "post_shift");
    }

    /// A 3-d pooling `[N, C, D, H, W]` as two 2-d passes (separable, see the importer): over
    /// `[N, C, D, H*W]` with the depth window, then over `[N, C*D', H, W]` with `p`'s window.
    /// Both keep the input's quantization, as 2-d pooling does.
    pub(super) fn lower_pool_3d(
        &mut self,
        n: &Node,
        kind: u16,
        depth: &Window,
        p: [i32; OP_PARAMS],
        dt: DType,
    ) -> Result<()> {
        let (x, out) = (n.inputs[0], n.outputs[0]);
        let [b, c, d, h, w] = self.g.tensors[x].shape[..] else { unreachable!("3-d pooling of a rank-5 tensor") };
        let [_, _, od, oh, ow] = self.g.tensors[out].shape[..] else { unreachable!("3-d pooling of a rank-5 tensor") };
        let src = self.get(x, dt, None)?;
        let q = (dt == DType::I8).then(|| self.tensor_q(src));
        let tmp = |this: &mut Self, tag: &str, dims: &[usize]| {
            this.act(&format!("{}:{tag}", n.name), dt, dims, Layout::Nhwc, q)
        };
        let a = tmp(self, "depth_in", &[b, c, d, h * w]);
        self.op(rop::RESHAPE, &format!("{}:depth_in", n.name), vec![src], a, NO_PARAMS);
        let mut pd = p;
        super::write::set_window(&mut pd, depth);
        let dp = tmp(self, "depth", &[b, c, od, h * w]);
        self.op(kind, &format!("{}:depth", n.name), vec![a], dp, pd);
        // A reshape converts layouts but has one row-major side: through a row-major copy.
        let flat = self.act(&format!("{}:depth_rows", n.name), dt, &[b, c * od, h, w], Layout::RowMajor, q);
        self.op(rop::RESHAPE, &format!("{}:depth_rows", n.name), vec![dp], flat, NO_PARAMS);
        let hw = tmp(self, "hw_in", &[b, c * od, h, w]);
        self.op(rop::RESHAPE, &format!("{}:hw_in", n.name), vec![flat], hw, NO_PARAMS);
        let y = tmp(self, "hw", &[b, c * od, oh, ow]);
        self.op(kind, &n.name, vec![hw], y, p);
        let z = self.output(out, dt, Layout::RowMajor, q);
        self.op(rop::RESHAPE, &format!("{}:3d", n.name), vec![y], z, NO_PARAMS);
        Ok(())
    }

    /// LayerNormalization's Mean and InvStdDev outputs: REDUCE mean, then `1 / sqrt(mean((x -
    /// mean)^2) + eps)` from BINARY, MUL, REDUCE, ADD and UNARY steps.
    pub(super) fn lower_norm_stats(&mut self, n: &Node, axis: usize, eps: f32, stats: &[bool; 2]) -> Result<()> {
        use sparq_format::layout::op::{binary, reduce, unary};
        if !stats[0] && !stats[1] {
            return Ok(());
        }
        let x = n.inputs[0];
        let xi = self.get(x, DType::F32, Some(Layout::RowMajor))?;
        let shape = self.g.tensors[x].shape.clone();
        let kept: Vec<usize> = (0..shape.len()).map(|a| if a >= axis { 1 } else { shape[a] }).collect();
        let mut rp = NO_PARAMS;
        rp[rop::FUNCTION] = reduce::MEAN;
        for a in axis..shape.len() {
            rp[rop::REDUCE_AXES] |= 1 << a;
        }
        let mean = if stats[0] {
            self.output(n.outputs[1], DType::F32, Layout::RowMajor, None)
        } else {
            self.act(&format!("{}:mean", n.name), DType::F32, &kept, Layout::RowMajor, None)
        };
        self.op(rop::REDUCE, &format!("{}:mean", n.name), vec![xi], mean, rp);
        if !stats[1] {
            return Ok(());
        }
        let tmp = |this: &mut Self, tag: &str, s: &[usize]| {
            this.act(&format!("{}:{tag}", n.name), DType::F32, s, Layout::RowMajor, None)
        };
        let mut bp = NO_PARAMS;
        bp[rop::FUNCTION] = binary::SUB;
        let d = tmp(self, "centered", &shape);
        self.op(rop::BINARY, &format!("{}:centered", n.name), vec![xi, mean], d, bp);
        let mut mp = NO_PARAMS;
        self.clamp_params(&mut mp, Act::NONE, None);
        let sq = tmp(self, "squared", &shape);
        self.op(rop::MUL, &format!("{}:squared", n.name), vec![d, d], sq, mp);
        let var = tmp(self, "variance", &kept);
        self.op(rop::REDUCE, &format!("{}:variance", n.name), vec![sq], var, rp);
        let ve = tmp(self, "variance_eps", &kept);
        self.f32_with_constant(n, rop::ADD, var, &[eps], &[1], ve, "eps");
        let sd = tmp(self, "std", &kept);
        let mut up = NO_PARAMS;
        up[rop::FUNCTION] = unary::SQRT;
        self.op(rop::UNARY, &format!("{}:std", n.name), vec![ve], sd, up);
        let inv = self.output(n.outputs[2 - (!stats[0]) as usize], DType::F32, Layout::RowMajor, None);
        up[rop::FUNCTION] = unary::RECIPROCAL;
        self.op(rop::UNARY, &format!("{}:inv_std", n.name), vec![sd], inv, up);
        Ok(())
    }
}
