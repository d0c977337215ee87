namespace RA3.Kernels.Ops;

/// <summary>
/// Marks a backend's <c>…Core</c> override as taking bfloat16 tensors itself: the public op then
/// hands it bf16 arguments instead of running the reference tier (the mixed-precision contract of
/// <see cref="Backend"/>). The declaration sits on the kernel, so it cannot drift from it; a
/// backend that inherits the kernel inherits the declaration, one that overrides it declares anew.
/// </summary>
[AttributeUsage(AttributeTargets.Method, Inherited = false)]
internal sealed class TakesBFloat16Attribute : Attribute
{
}
