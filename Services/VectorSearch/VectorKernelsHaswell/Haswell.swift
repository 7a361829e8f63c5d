/// `SIMDKernels` compiled for Haswell and later (AVX2, FMA): VectorIndex calls these through
/// `Kernels` only after checking the CPU has those instructions.
public typealias HaswellKernels = SIMDKernels
