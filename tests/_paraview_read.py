"""Run by ParaView's pvpython: open an XDMF sidecar with ParaView's "XDMF Reader" and print,
as JSON, the time steps, grid bounds and the values of one field at the last time step."""

import json
import sys

from paraview import servermanager
from paraview.simple import XDMFReader
from vtk.numpy_interface import dataset_adapter as dsa

reader = XDMFReader(FileNames=[sys.argv[1]])
times = list(reader.TimestepValues)
reader.UpdatePipeline(times[-1])
data = servermanager.Fetch(reader)
while data.IsA("vtkMultiBlockDataSet"):
    data = data.GetBlock(0)
values = dsa.WrapDataObject(data).PointData[sys.argv[2]]
print(
    json.dumps(
        {"times": times, "bounds": list(data.GetBounds()), "values": [float(v) for v in values]}
    )
)
