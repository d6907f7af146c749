"""k-nearest-neighbour classification on frozen features (cosine similarity)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


@torch.no_grad()
def knn_predict(bank: torch.Tensor, bank_labels: torch.Tensor, queries: torch.Tensor, k: int, num_classes: int,
                batch_size: int = 1024) -> torch.Tensor:
    """The class of each query: majority vote of its k most cosine-similar bank samples.

    A tie goes to the class whose voting neighbours are more similar in total: their summed
    similarity, divided by 2k + 1, is below 1/2 in size, so it only breaks ties of whole votes.
    """
    bank = F.normalize(bank, dim=1)
    predictions = []
    for start in range(0, len(queries), batch_size):
        similarity = F.normalize(queries[start : start + batch_size], dim=1) @ bank.T
        top_similarity, top_index = similarity.topk(k, dim=1)
        neighbour_labels = bank_labels[top_index]
        votes = torch.zeros(len(top_index), num_classes, device=bank.device)
        votes.scatter_add_(1, neighbour_labels, torch.ones_like(top_similarity))
        nearness = torch.zeros_like(votes).scatter_add_(1, neighbour_labels, top_similarity)
        predictions.append((votes + nearness / (2 * k + 1)).argmax(1))
    return torch.cat(predictions)


def knn_accuracy(bank, bank_labels, queries, query_labels, k: int, num_classes: int, batch_size: int = 1024) -> float:
    predicted = knn_predict(bank, bank_labels, queries, k, num_classes, batch_size)
    return (predicted == query_labels).double().mean().item()
