/// `EncoderLoops` compiled for Haswell and later (AVX2, FMA): KBEmbeddings calls these only after
/// checking the CPU has those instructions.
public typealias HaswellEncoderLoops = EncoderLoops
