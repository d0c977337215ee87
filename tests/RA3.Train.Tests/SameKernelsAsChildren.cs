using NUnit.Framework;
using RA3.Kernels.Cpu;

namespace RA3.Train.Tests;

/// <summary>
/// Before any test of this assembly: this process computes with the GEMM tuning the ra3 child
/// processes it starts will take (this processor's measured and cached one), so a run made here
/// and one made by a child — an uninterrupted run beside a killed and resumed one — can match bit
/// for bit.
/// </summary>
[SetUpFixture]
public sealed class SameKernelsAsChildren
{
    [OneTimeSetUp]
    public void TakeTheProcessorsTuning() => GemmKernel.Tuning = GemmTuning.ForThisProcessor();
}
