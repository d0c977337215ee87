using System.Runtime.CompilerServices;

// ILGPU compiles kernels into a dynamic assembly named ILGPURuntime, which must see the
// internal kernel classes and parameter structs.
[assembly: InternalsVisibleTo("ILGPURuntime")]
