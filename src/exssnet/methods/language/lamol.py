"""LAMOL-style pseudo-sample replay (Sun et al. 2020) with any Hugging Face causal language model.

A causal LM (`lamol_lm`: name or folder) learns, after each task, to write that task's texts after a
prompt naming the task's class ("<class name> :"), together with its own pseudo texts of earlier tasks
(so it keeps being able to write them). Before task t > 0 it writes, for every earlier task,
round(`lamol_gamma` * |training set of t|) pseudo texts, labels cycling over that task's classes; the
classifier (encoder + per-task heads) then trains on each current batch plus `replay_batch_size` pseudo
examples, each on its own task's head. The LM trains on batches of texts of similar length (every text once
per epoch, batches in random order: `length_grouped_batches`), so a batch that mixes short texts with long
pseudo texts is not padded to its longest one; `lamol_lm_amp` runs the LM (training and generation) in bf16
or fp16 mixed precision, as LAMOL's reference code trains in fp16. Differences from LAMOL: the classifier is
the BERT-like encoder (not the LM itself) and generation is class-conditional (the label is in the prompt,
not generated).
Real numbers need a pretrained LM (e.g. a GPT-2 folder); the tests use a tiny random one.
"""

from __future__ import annotations

import torch

from exssnet import amp
from exssnet.data.length_batches import length_grouped_batches
from exssnet.data.tasks import Benchmark, Inputs, TaskData, concat_inputs, take
from exssnet.data.text_tokens import load_pretrained, load_tokenizer, tokenize
from exssnet.errors import ExssnetError
from exssnet.methods.base import register_method
from exssnet.methods.language.base import LamolSettings, LanguageMethod
from exssnet.methods.method_state import MethodState
from exssnet.seeds import BufferStream, buffer_seed
from exssnet.settings import CoreSettings, Settings


def load_causal_lm(name: str | None):  # noqa: ANN201 - (model, tokenizer)
    if not name:
        raise ExssnetError("lamol needs a causal language model: pass --lamol-lm smollm2-135m (after `make setup-text-large`) or a model folder")
    tokenizer = load_pretrained("AutoTokenizer", name, "the tokenizer of causal language model")
    model = load_pretrained("AutoModelForCausalLM", name, "causal language model")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    tokenizer.padding_side = "left"  # decoder-only generation continues the prompt's last token
    return model, tokenizer


@register_method("lamol", settings=LamolSettings)
class Lamol(LanguageMethod):
    """Classifier replay of pseudo texts written by a causal LM that learns every task's texts."""

    def __init__(self, config: CoreSettings, benchmark: Benchmark, settings: Settings | None = None) -> None:
        super().__init__(config, benchmark, settings)
        self.lm, self.lm_tokenizer = load_causal_lm(self.settings.lamol_lm)
        self.lm.to(self.device)
        self.encoder_tokenizer = load_tokenizer(config.encoder)
        self.pseudo: tuple[Inputs, torch.Tensor, torch.Tensor] | None = None  # (x, y, task ids)
        self.pseudo_texts: list[str] = []  # LM training texts (prompt + generated text) of earlier tasks
        self.pseudo_counts: list[dict[str, int]] = []
        self.generator = torch.Generator().manual_seed(buffer_seed(config.seed, BufferStream.LAMOL))

    @staticmethod
    def prompt(class_name: str) -> str:
        return f"{class_name} :"

    @torch.no_grad()
    def generate(self, prompts: list[str]) -> list[str]:
        self.lm.eval()
        texts = []
        for start in range(0, len(prompts), 32):
            batch = self.lm_tokenizer(prompts[start : start + 32], return_tensors="pt", padding=True,
                                      add_special_tokens=False).to(self.device)
            with amp.autocast(self.settings.lamol_lm_amp, self.device):
                out = self.lm.generate(**batch, do_sample=True, top_k=20, max_new_tokens=self.config.max_length,
                                       pad_token_id=self.lm_tokenizer.pad_token_id)
            texts += self.lm_tokenizer.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
        return [t.strip() for t in texts]

    def before_task(self, task_id: int, task: TaskData) -> None:
        super().before_task(task_id, task)
        self.pseudo = None
        if task_id == 0:
            return
        per_task = max(1, round(self.settings.lamol_gamma * len(task.train)))
        prompts, labels, task_ids = [], [], []
        for j, earlier in enumerate(self.benchmark.tasks[:task_id]):
            for i in range(per_task):
                k = i % earlier.num_classes
                prompts.append(self.prompt(earlier.classes[k]))
                labels.append(k)
                task_ids.append(j)
        texts = self.generate(prompts)
        self.pseudo_texts = [f"{p} {t}" for p, t in zip(prompts, texts)]
        ids, mask = tokenize(self.encoder_tokenizer, [(t, None) for t in texts], self.config.max_length)
        self.pseudo = ((ids.to(self.device), mask.to(self.device)), torch.tensor(labels, device=self.device),
                       torch.tensor(task_ids, device=self.device))
        self.pseudo_counts.append({str(j): task_ids.count(j) for j in range(task_id)})

    def training_loss(self, x: Inputs, y: torch.Tensor, task_id: int) -> torch.Tensor:
        task_ids = torch.full_like(y, task_id)
        if self.pseudo is not None:
            px, py, pt = self.pseudo
            pick = torch.randperm(len(py), generator=self.generator)[: self.settings.replay_batch_size].to(self.device)
            x, y, task_ids = concat_inputs([x, take(px, pick)]), torch.cat([y, py[pick]]), torch.cat([task_ids, pt[pick]])
        return self.net.mixed_cross_entropy(self.net.features(x), y, task_ids)

    @classmethod
    def task_texts(cls, encoder_tokenizer, task: TaskData) -> list[str]:  # noqa: ANN001 - a Hugging Face tokenizer
        """The LM's training texts of a task: each example's class prompt, then the text as the encoder sees it."""
        real = encoder_tokenizer.batch_decode(task.train.x[0], skip_special_tokens=True)
        return [f"{cls.prompt(task.classes[int(k)])} {t}" for t, k in zip(real, task.train.y.tolist())]

    def after_task(self, task_id: int, task: TaskData) -> None:
        """Teach the LM to write this task's texts (and keep writing the earlier tasks' pseudo texts). After the
        stream's last task nothing is generated again, so the LM is not trained then."""
        if task_id + 1 < len(self.benchmark.tasks):
            self.train_lm(self.task_texts(self.encoder_tokenizer, task) + self.pseudo_texts)

    def train_lm(self, texts: list[str]) -> None:
        eos = self.lm_tokenizer.eos_token or ""
        texts = [text + eos for text in texts]
        limit = 2 * self.config.max_length
        lengths = [len(ids) for ids in self.lm_tokenizer(texts, truncation=True, max_length=limit)["input_ids"]]
        optimizer = torch.optim.Adam(self.lm.parameters(), lr=self.settings.lm_lr)
        self.lm.train()
        with amp.autocast(self.settings.lamol_lm_amp, self.device):
            scaler = amp.grad_scaler(self.device)  # on only under fp16
        for _ in range(self.epochs_per_task):
            for picked in length_grouped_batches(lengths, self.config.batch_size, self.generator):
                batch = self.lm_tokenizer([texts[i] for i in picked], return_tensors="pt", padding=True,
                                          truncation=True, max_length=limit).to(self.device)
                labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
                with amp.autocast(self.settings.lamol_lm_amp, self.device):  # the forward only (torch's advice)
                    loss = self.lm(**batch, labels=labels).loss
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                with amp.outside_autocast(self.device):  # also outside the run's own --amp autocast
                    scaler.step(optimizer)
                scaler.update()
        self.lm.eval()

    def resumed_modules(self) -> dict[str, torch.nn.Module]:
        return {**super().resumed_modules(), "lm": self.lm}

    def resume_state(self) -> MethodState:
        state = super().resume_state()
        state.tensors["lamol_generator"] = self.generator.get_state()
        state.values.update(lamol_pseudo_texts=self.pseudo_texts, lamol_pseudo_counts=self.pseudo_counts)
        return state

    def load_resume_state(self, state: MethodState) -> None:
        super().load_resume_state(state)
        if "lamol_generator" not in state.tensors:
            raise ExssnetError("the checkpoint has no state of lamol's random stream")
        self.generator.set_state(state.tensors["lamol_generator"])
        self.pseudo_texts = state.value("lamol_pseudo_texts", list)
        self.pseudo_counts = state.value("lamol_pseudo_counts", list)

    def summary(self) -> dict:
        return {"lamol_pseudo_counts": self.pseudo_counts, "lamol_lm": self.settings.lamol_lm}
