"""Training data: named columns from NPZ, HDF5 and ROOT files, streamed in chunks,
turned into a feature matrix (jagged branches padded with a mask), cleaned by an
explicit NaN/inf policy, and scaled by parameters saved with the model.

``read_dataset(DataConfig.from_project(project))`` is the entry point; the readers in
``npz``, ``hdf5`` and ``root`` share one small interface (``Source``).
"""

from fpgaflow.data.config import DataConfig, DataError, FeatureSpec
from fpgaflow.data.dataset import Dataset, read_dataset
from fpgaflow.data.scaling import Scaling, fit_scaling

__all__ = ["DataConfig", "DataError", "FeatureSpec", "Dataset", "read_dataset", "Scaling", "fit_scaling"]
