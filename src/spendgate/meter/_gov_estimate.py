"""Worst-case estimates of requests: priced once per shape (model, input tokens, ``max_tokens``)."""

from __future__ import annotations

from spendgate.budgets import RequestEstimate, worst_case_output_tokens
from spendgate.errors import PricingError
from spendgate.meter._gov_state import GovernorBase
from spendgate.pricing._compiled import CompiledPrice
from spendgate.tokens import max_output_tokens
from spendgate.usage import MAX_COUNT, Usage

__all__ = ["Estimates"]

_NAMES_MAX = 100_000  # (provider, model) pairs remembered as valid, and worst-case outputs
_ESTIMATES_MAX = 4_096  # estimates remembered (forgotten all at once beyond it)
_INTS = frozenset({int, type(None)})


class Estimates(GovernorBase):
    """The worst case of a request, remembered while its model's price stays the same."""

    def estimate(self, provider: str, model: str, input_tokens: int, max_tokens: int | None) -> RequestEstimate | None:
        """The worst case of a call, or None when the model has no price (cost limits can't be bounded).

        Remembered while the model's price is static and unchanged (:meth:`PriceBook.static_price`): calls
        of the same shape (model, input tokens, ``max_tokens``) share one immutable estimate.
        """
        price = self.prices.static_price(provider, model)
        if type(input_tokens) is not int or type(max_tokens) not in _INTS:  # True would find 1's entries
            return self._estimate(provider, model, input_tokens, max_tokens, None)  # (and Usage refuses it)
        key = (provider, model, input_tokens, max_tokens)
        hit = self._estimates.get(key)
        if hit is not None and hit[0] is price:
            return hit[1]
        estimate = self._estimate(provider, model, input_tokens, max_tokens, price)
        if price is None:
            price = self.prices.static_price(provider, model)  # the first call of a model resolves its price
        if estimate is not None and price is not None:
            if len(self._estimates) >= _ESTIMATES_MAX:
                self._estimates = {}
            self._estimates[key] = (price, estimate)
        return estimate

    def _estimate(
        self, provider: str, model: str, input_tokens: int, max_tokens: int | None, price: CompiledPrice | None
    ) -> RequestEstimate | None:
        plain = type(max_tokens) in _INTS
        output = self._outputs.get((provider, model, max_tokens)) if plain else None
        if output is None:
            model_max = self._max_output.get((provider, model), 0)
            if model_max == 0:
                model_max = max_output_tokens(model, self.settings.max_output_tokens)
                self._max_output[(provider, model)] = model_max
            output = worst_case_output_tokens(max_tokens, model_max, self.settings.output_token_cap)
            if plain:
                if len(self._outputs) >= _NAMES_MAX:
                    self._outputs = {}
                self._outputs[(provider, model, max_tokens)] = output
        cost = None
        if price is not None and type(input_tokens) is int and 0 <= input_tokens <= MAX_COUNT:  # as Usage accepts
            cost = price.tokens_total(input_tokens, output, model)  # (output is in range too)
        if cost is None:  # not a static price (or not yet resolved), or counts Usage should judge
            try:
                cost = self.prices.cost(provider, model, Usage(input_tokens=input_tokens, output_tokens=output)).total
            except PricingError:
                return None
        if (provider, model) in self._named:  # the Usage above checked the token counts
            return RequestEstimate.trusted(
                provider=provider, model=model, cost=cost, input_tokens=input_tokens, output_tokens=output
            )
        estimate = RequestEstimate(
            provider=provider, model=model, cost=cost, input_tokens=input_tokens, output_tokens=output
        )
        if len(self._named) < _NAMES_MAX:
            self._named.add((provider, model))
        return estimate
