"""The retrieval pool (embeddings, labels, batch positions) that the retrieval and loss tests share."""
import pytest
import torch


@pytest.fixture
def pool():
    """Two runs' embeddings of 30 indexed memes, 5 of which are also the batch."""
    g = torch.Generator().manual_seed(0)
    index = torch.randn(2, 30, 6, generator=g)
    labels = torch.randint(0, 2, (30,), generator=g)
    positions = torch.tensor([[3, 7, 11, 20, 29], [0, 7, 12, 13, 28]])
    queries = index.gather(1, positions[..., None].expand(-1, -1, 6)) + 0.01 * torch.randn(2, 5, 6, generator=g)
    return queries, labels, positions, index
