"""Subnets and the EDNN module."""
from .ednn import EDNN, TileNet
from .subnets import PAPER_CONV_LAYERS, ConvSubnet, DenseSubnet, build_subnet

__all__ = ["EDNN", "TileNet", "ConvSubnet", "DenseSubnet", "build_subnet", "PAPER_CONV_LAYERS"]
